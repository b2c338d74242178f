"""The CLI's one error type: printed as a single 'aishim: ...' line, exit 1."""


class AishimError(Exception):
    pass
