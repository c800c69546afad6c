"""Where `ifrt infer` finds its images: files, folders, glob patterns and list files (`@list.txt`),
expanded in a stable order with duplicates removed."""

from __future__ import annotations

import glob
from pathlib import Path

from ifrt.imageio import IMAGE_SUFFIXES


class SourceError(ValueError):
    """A source argument matches nothing; the message names it."""


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def expand_sources(sources: list[str], recursive: bool = False) -> list[Path]:
    """Files as given (any suffix: a bad file is reported when read), folders as their image files
    (sorted; with `recursive`, subfolders too), globs as their matches, `@FILE` as one path per line
    (relative to FILE's folder; blank lines and `#` comments skipped)."""
    found: list[Path] = []
    for text in sources:
        if text.startswith("@"):
            listing = Path(text[1:])
            if not listing.is_file():
                raise SourceError(f"{listing}: list file not found")
            lines = [ln.strip() for ln in listing.read_text().splitlines()]
            found += [(listing.parent / ln) if not Path(ln).is_absolute() else Path(ln)
                      for ln in lines if ln and not ln.startswith("#")]
        elif any(ch in text for ch in "*?["):
            matches = sorted(Path(m) for m in glob.glob(text, recursive=True))
            if not matches:
                raise SourceError(f"{text}: the pattern matches no files")
            found += [m for m in matches if m.is_file()]
        else:
            path = Path(text)
            if path.is_dir():
                pattern = "**/*" if recursive else "*"
                found += sorted(p for p in path.glob(pattern) if p.is_file() and _is_image(p))
            else:
                found.append(path)  # missing or unreadable files are reported per file, not here
    unique, seen = [], set()
    for path in found:
        key = str(path)
        if key not in seen:
            seen.add(key)
            unique.append(path)
    return unique
