WORD: str
QIDENT: str
INT: str
FLOAT: str
DURATION: str
STRING: str
OP: str
PUNCT: str
EOF: str

BLOCK_FULL: int  # scan's stop: max_tokens tokens were read
AT_END: int  # the end of the text
FALLBACK: int  # the token at pos is for the caller's regular expression

class Token:
    kind: str
    text: str
    value: object
    upper: str
    line: int
    column: int
    offset: int
    def __init__(self, kind: str, text: str, value: object, line: int, column: int,
                 offset: int = -1) -> None: ...
    @property
    def pos(self) -> tuple[int, int]: ...
    def describe(self) -> str: ...

def scan(
    sql: str,
    pos: int,  # where to start (an offset in characters)
    line: int,  # the 1-based line of pos
    line_start: int,  # where that line starts
    max_tokens: int,
    uppers: dict[str, str],  # word -> its upper case, filled as words are met
) -> tuple[list[Token], int, int, int, int, int, int, int]: ...
    # (tokens, stop, pos, line, line_start, end, end_line, end_line_start)
