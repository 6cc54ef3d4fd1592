#!/usr/bin/env python3
"""json_oracle.py - an independent verdict on dsfs JSON values, for tests.

test_json generates random JSON-ish files and compares the validator's
verdict with this one, which rests on Python's json module (a different
parser by different people) plus the rules dsfs adds to RFC 8259:

  - the bytes must be valid UTF-8 (Python's codec is strict: no overlongs,
    no encoded surrogates, nothing above U+10FFFF), with no BOM;
  - NaN, Infinity and -Infinity are refused (json.loads takes them);
  - strings must decode to text UTF-8 can hold, so a \\uD800 escape without
    its low half is refused (json.loads takes it);
  - nesting deeper than 512 containers is refused;
  - empty or white-space-only content is valid, with type "empty".

Usage: json_oracle.py FILE...  or  json_oracle.py --list LISTFILE
(LISTFILE names one file per line).  Prints one line per file, in order:
"valid TYPE" or "invalid", TYPE being object, array, string, number,
boolean, null or empty.
"""
import json
import sys

MAX_DEPTH = 512
WHITE_SPACE = ' \t\n\r'


def refuse_constant(name):
    raise ValueError('non-finite number ' + name)


def check_tree(value):
    """Raise ValueError if value nests too deep or holds a string that is
    not Unicode text (a lone surrogate).  Iterative: no recursion limit."""
    stack = [(value, 0)]
    while stack:
        v, depth = stack.pop()
        if isinstance(v, str):
            v.encode('utf-8')  # UnicodeEncodeError is a ValueError
        elif isinstance(v, list):
            if depth + 1 > MAX_DEPTH:
                raise ValueError('too deep')
            stack.extend((x, depth + 1) for x in v)
        elif isinstance(v, dict):
            if depth + 1 > MAX_DEPTH:
                raise ValueError('too deep')
            for k, x in v.items():
                k.encode('utf-8')
                stack.append((x, depth + 1))


def type_name(v):
    if isinstance(v, dict):
        return 'object'
    if isinstance(v, list):
        return 'array'
    if isinstance(v, str):
        return 'string'
    if isinstance(v, bool):  # before int: bool is an int
        return 'boolean'
    if v is None:
        return 'null'
    return 'number'


def verdict(data):
    try:
        text = data.decode('utf-8')
    except UnicodeDecodeError:
        return 'invalid'
    if text.strip(WHITE_SPACE) == '':
        return 'valid empty'
    try:
        # parse_int/parse_float: the value does not matter, and Python
        # limits the digits of an int it converts.
        value = json.loads(text, parse_constant=refuse_constant,
                           parse_int=lambda s: 0,
                           parse_float=lambda s: 0.0)
        check_tree(value)
    except (ValueError, RecursionError):
        return 'invalid'
    return 'valid ' + type_name(value)


def main(argv):
    if len(argv) == 3 and argv[1] == '--list':
        with open(argv[2], encoding='utf-8') as f:
            names = [line.rstrip('\n') for line in f if line.strip()]
    else:
        names = argv[1:]
    sys.setrecursionlimit(10000)
    out = []
    for name in names:
        with open(name, 'rb') as f:
            out.append(verdict(f.read()))
    sys.stdout.write(''.join(line + '\n' for line in out))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
