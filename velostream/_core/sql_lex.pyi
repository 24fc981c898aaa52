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

def scan_items(
    sql: str,
    pos: int,  # where the run starts (an item's first character)
    line: int,
    line_start: int,
    select: bool,  # wrap each item in select_item
    column: type,  # ast.Column
    literal: type,  # ast.Literal
    select_item: type,  # ast.SelectItem
    reserved: set[str],  # words that are not column names (NULL, TRUE, FALSE are literals)
    system: set[str],  # column names kept in upper case
    out: list,  # the nodes are appended here
) -> tuple[int, int, int, int]: ...
    # (count, end, line, line_start)

# the parser's commonest nodes, made as their dataclass __init__ makes them
def new_binary(cls: type, op: str, left: object, right: object, at: tuple[int, int]) -> object: ...
def new_column(cls: type, name: str, at: tuple[int, int]) -> object: ...
def new_literal(cls: type, value: object, type_name: str, at: tuple[int, int]) -> object: ...
def new_select_item(cls: type, expr: object, alias: str | None, at: tuple[int, int]) -> object: ...
