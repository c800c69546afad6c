"""Where `ifrt infer` finds its images: files, folders, glob patterns and list files (`@list.txt`),
expanded in a stable order with duplicates removed. A file is identified by its resolved path, so the
same image named twice (relative and absolute, or through a link) is analysed once."""

from __future__ import annotations

import glob
from dataclasses import dataclass, field
from pathlib import Path

from ifrt.imageio import IMAGE_SUFFIXES


class SourceError(ValueError):
    """A list file named with `@` does not exist; the message names it."""


@dataclass
class SourceSet:
    """The images found, plus what the user named that holds none, so a run can report it per source
    instead of stopping: `missing` holds (source as given, reason) for files that do not exist and
    patterns that match nothing."""

    paths: list[Path] = field(default_factory=list)
    missing: list[tuple[str, str]] = field(default_factory=list)
    duplicates: int = 0  # inputs dropped because an earlier one names the same file
    folders_with_subfolders: list[Path] = field(default_factory=list)  # empty folders that have subfolders


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def _is_under(path: Path, folder: Path | None) -> bool:
    return folder is not None and path.resolve().is_relative_to(folder)


def collect_sources(sources: list[str], recursive: bool = False, exclude: Path | None = None) -> SourceSet:
    """Files as given (any suffix: a bad file is reported when read), folders as their image files
    (sorted; with `recursive`, subfolders too), globs as their matches, `@FILE` as one path per line
    (relative to FILE's folder; blank lines and `#` comments skipped). Files found in folders and by
    patterns are skipped when under `exclude` (the output folder, whose pictures are not inputs)."""
    found = SourceSet()
    candidates: list[Path] = []
    excluded = exclude.resolve() if exclude is not None else None
    for text in sources:
        if text.startswith("@"):
            listing = Path(text[1:])
            if not listing.is_file():
                raise SourceError(f"{listing}: list file not found")
            for line in (ln.strip() for ln in listing.read_text().splitlines()):
                if line and not line.startswith("#"):
                    path = Path(line) if Path(line).is_absolute() else listing.parent / line
                    if path.exists():
                        candidates.append(path)
                    else:
                        found.missing.append((str(path), f"file not found (listed in {listing}; its paths are "
                                                         "relative to the list file's folder)"))
        elif any(ch in text for ch in "*?["):
            matches = [m for m in sorted(Path(m) for m in glob.glob(text, recursive=True)) if m.is_file()]
            if not matches:
                found.missing.append((text, "the pattern matches no files"))
            candidates += [m for m in matches if not _is_under(m, excluded)]
        else:
            path = Path(text)
            if path.is_dir():
                pattern = "**/*" if recursive else "*"
                images = sorted(p for p in path.glob(pattern) if p.is_file() and _is_image(p))
                candidates += [p for p in images if not _is_under(p, excluded)]
                if not images and not recursive and any(p.is_dir() for p in path.iterdir()):
                    found.folders_with_subfolders.append(path)
            elif path.exists():
                candidates.append(path)  # unreadable or non-image files are reported when read
            else:
                found.missing.append((text, "file not found (check the path)"))
    seen: set[Path] = set()
    for path in candidates:
        resolved = path.resolve()
        if resolved in seen:
            found.duplicates += 1
        else:
            seen.add(resolved)
            found.paths.append(path)
    return found


def expand_sources(sources: list[str], recursive: bool = False) -> list[Path]:
    """The existing image files among `sources` (see `collect_sources`), for callers that need no report
    of what matched nothing."""
    return collect_sources(sources, recursive=recursive).paths
