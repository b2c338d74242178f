"""Every declared layout by name, for tools: the UAPI structs (one version)
and the firmware structures (per firmware version)."""

from __future__ import annotations

from structs import fw, uapi
from structs.layout import Layout


class UnknownStruct(KeyError):
    pass


def names() -> list[str]:
    return sorted({lay.name for lay in uapi.LAYOUTS} | set(fw.ALL))


def kind(name: str) -> str:
    return "firmware" if name in fw.ALL else "uapi"


def versions(name: str) -> list:
    """Firmware versions that have the struct ([] for a UAPI struct)."""
    if name in fw.ALL:
        return [v for v in fw.VERSIONS if fw.ALL[name].exists_in(v)]
    return []


def layout(name: str, version=None) -> Layout:
    """The layout of name (for firmware structs: of one version, default newest)."""
    if name in fw.ALL:
        v = version or fw.DEFAULT
        if not fw.ALL[name].exists_in(v):
            raise UnknownStruct(f"{name} does not exist in firmware {fw.version_str(v)}")
        return fw.ALL[name].layout(v)
    for lay in uapi.LAYOUTS:
        if lay.name == name or lay.c_name == name:
            return lay
    close = [n for n in names() if n.lower() == name.lower()]
    hint = f" (did you mean {close[0]}?)" if close else ""
    raise UnknownStruct(f"no struct named {name!r}{hint}; `aishim structs list` shows them")


def field_docs(name: str, version=None) -> dict[str, str]:
    """Per-field comments of a firmware declaration (the 'datasheet' column)."""
    if name not in fw.ALL:
        return {}
    v = version or fw.DEFAULT
    return {f.name: f.doc for f in fw.ALL[name].fields if f.applies(v) and f.doc}
