"""Which files a spec names, and reading them safely.

Every path stays inside the data folder; only regular files are read, with
a size cap (`max_file_mb`), so a FIFO or a link to /dev/zero cannot hang a
build; subjects come from the path (`subject_regex`).
"""

import csv
import os
import pathlib
import re
import stat

from etils import epath

from imujax.datasets.recordings import schema

Spec = schema.Spec
SpecError = schema.SpecError
_plain = schema.plain
# More errors than this in one build are summarised by their count.
MAX_LISTED_ERRORS = 20


def check_regular(path, spec: Spec) -> os.stat_result:
  """Raises unless `path` is a regular file within the size cap.

  Only stat() is called, which never blocks: a FIFO, a device such as
  /dev/zero or a dangling symlink is refused before any byte is read.
  """
  if os.path.islink(path) and not os.path.exists(path):
    raise ValueError(f"{path}: a symlink to {os.readlink(path)!r}, which does "
                     "not exist; restore the target or delete the link.")
  try:
    st = os.stat(path)
  except OSError as e:
    raise ValueError(f"{path}: cannot be read ({e.strerror}).") from None
  if not stat.S_ISREG(st.st_mode):
    kind = ("a directory" if stat.S_ISDIR(st.st_mode) else
            "a FIFO" if stat.S_ISFIFO(st.st_mode) else
            "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)
            else "a socket" if stat.S_ISSOCK(st.st_mode) else "special")
    raise ValueError(f"{path}: {kind}, not a regular file; imujax reads only "
                     "regular files. Replace it with the data file or move "
                     "it out of the data folder.")
  if st.st_size > spec.max_file_mb * 2**20:
    raise ValueError(
        f"{path}: {st.st_size / 2**20:.0f} MiB, more than max_file_mb = "
        f"{_plain(spec.max_file_mb)}; split the recording, or raise "
        f"max_file_mb in {spec.path}.")
  return st


def read_bytes(path, spec: Spec) -> bytes:
  """The bytes of a regular file of at most `max_file_mb`; never blocks."""
  check_regular(path, spec)
  limit = int(spec.max_file_mb * 2**20)
  # O_NONBLOCK: should the path turn into a FIFO after the check, open()
  # returns at once instead of waiting for a writer; fstat then refuses it.
  fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
  try:
    if not stat.S_ISREG(os.fstat(fd).st_mode):
      raise ValueError(f"{path}: not a regular file; imujax reads only "
                       "regular files.")
    with os.fdopen(fd, "rb", closefd=False) as f:
      data = f.read(limit + 1)
  finally:
    os.close(fd)
  if len(data) > limit:
    raise ValueError(f"{path}: grew beyond max_file_mb = "
                     f"{_plain(spec.max_file_mb)} while read; raise "
                     f"max_file_mb in {spec.path}.")
  return data


def read_text(path, spec: Spec) -> str:
  """A text file decoded with `csv.encoding`; errors name the line and fix."""
  data = read_bytes(path, spec)
  try:
    text = data.decode(spec.encoding)
  except UnicodeDecodeError as e:
    line = data[:e.start].count(b"\n") + 1
    if data[:2] in (b"\xff\xfe", b"\xfe\xff") or b"\x00" in data[:64]:
      fix = ('it looks like UTF-16: set csv.encoding = "utf-16" in '
             f"{spec.path}, or re-save the file as UTF-8")
    else:
      fix = ("re-save the file as UTF-8, or set csv.encoding (e.g. "
             f'"latin-1") in {spec.path}')
    raise ValueError(
        f"{path}:{line}: byte {data[e.start]:#04x} is not valid "
        f"{spec.encoding}; {fix}.") from None
  text = text.lstrip("\ufeff")
  if "\x00" in text:
    line = text[:text.index("\x00")].count("\n") + 1
    raise ValueError(
        f"{path}:{line}: NUL character: a binary file, or UTF-16 text read "
        f"as {spec.encoding}. Set csv.encoding = \"utf-16\" in {spec.path} "
        "if it is UTF-16 text, else remove the file from the data folder.")
  return text


def file_keys(spec: Spec, data_path) -> dict[str, str]:
  """The placeholders of a data file: {stem}, {name}, key_regex's groups.

  key_regex is searched in the file name; a file it does not match is an
  error naming the file.
  """
  data_path = epath.Path(data_path)
  keys = {"stem": data_path.stem, "name": data_path.name}
  if spec.key_regex:
    m = re.search(spec.key_regex, data_path.name)
    if not m:
      raise ValueError(
          f"{data_path}: key_regex {spec.key_regex!r} does not match the file "
          f"name {data_path.name!r}; fix key_regex in {spec.path}, or narrow "
          "files so that only data files match.")
    keys.update({k: v or "" for k, v in m.groupdict().items()})
  return keys


def substitute(pattern: str, keys: dict, data_path, key: str) -> epath.Path:
  """`pattern` with {field} replaced from `keys`, beside the data file.

  A plain substitution (never `str.format`, which would evaluate attribute
  lookups such as `{stem.__class__}` written in the spec).
  """
  data_path = epath.Path(data_path)
  name = re.sub(r"\{(\w+)\}", lambda m: keys[m.group(1)], pattern)
  if ".." in re.split(r"[\\/]", name):
    raise ValueError(f"{data_path}: {key} gives {name!r}, outside the data "
                     "folder; rename the file.")
  return data_path.parent / name


def label_path(spec: Spec, data_path) -> epath.Path:
  """The segment file of a data file: `labels.file` with its placeholders."""
  return substitute(spec.label_file, file_keys(spec, data_path), data_path,
                    "labels.file")


def sibling_paths(spec: Spec, data_path) -> dict[str, epath.Path]:
  """`channels[i].file` pattern -> that file for this data file."""
  patterns = dict.fromkeys(p for p in spec.channel_files if p)
  if not patterns:
    return {}
  keys = file_keys(spec, data_path)
  return {p: substitute(p, keys, data_path, "channels[].file")
          for p in patterns}


def companions(spec: Spec, data_path) -> list[epath.Path]:
  """Files read with a data file: its label file and sibling channel files."""
  out = list(sibling_paths(spec, data_path).values())
  if spec.label_file:
    out.append(label_path(spec, data_path))
  return out


def list_files(folder, spec: Spec) -> list[epath.Path]:
  """The data files of the spec under `folder`, sorted.

  Raises:
    FileNotFoundError: the folder is missing, or no file matches.
    ValueError: a matching path is a dangling symlink or not a regular file
      (all such paths in one message).
  """
  folder = pathlib.Path(folder)
  if not folder.is_dir():
    raise FileNotFoundError(
        f"{folder}: the data folder does not exist (the spec's folder, or "
        f"manual_dir; spec {spec.path}). Point it at the folder holding the "
        "recordings.")
  files, bad = [], []
  # pathlib: epath refuses recursive '**' patterns (costly on cloud storage).
  for p in sorted(folder.glob(spec.files)):
    suffix = p.suffix.lower()
    if not ((spec.format or schema.FORMATS.get(suffix)) and suffix in schema.FORMATS):
      continue
    if p.is_symlink() and not p.exists():
      bad.append(f"{p}: a symlink to {os.readlink(p)!r}, which does not "
                 "exist; restore the target or delete the link.")
    elif p.is_dir():
      continue
    elif not p.is_file():
      bad.append(f"{p}: not a regular file (a FIFO, device or socket); "
                 "imujax reads only regular files. Move it out of the data "
                 "folder.")
    else:
      files.append(epath.Path(p))
  if bad:
    raise ValueError(too_many(bad, f"bad paths in {folder}"))
  files = _without_companions(folder, spec, files)
  if not files:
    raise FileNotFoundError(
        f"{folder}: no data files match files={spec.files!r} ({spec.path}). "
        "Point manual_dir (or the spec's folder) at the data.")
  return files


def _without_companions(folder, spec: Spec, files: list) -> list:
  """Drops label, sibling and segment-table files from the data files.

  With key_regex, a remaining file it does not match is an error; all such
  files are named in one error.
  """
  others, unmatched = set(), []
  if spec.segments:
    others.add(str(pathlib.Path(folder) / spec.segments))
  for p in files:
    try:
      others.update(str(q) for q in companions(spec, p))
    except ValueError as e:  # key_regex does not match its name.
      unmatched.append((p, e))
  unmatched = [e for p, e in unmatched if str(p) not in others]
  if unmatched:
    raise ValueError(too_many(unmatched, f"files in {folder} that key_regex "
                              "does not match"))
  kept = [p for p in files if str(p) not in others]
  return kept


def subject_of(path: epath.Path, folder: epath.Path, spec: Spec) -> str:
  rel = pathlib.Path(path).relative_to(folder).as_posix()
  m = re.search(spec.subject_regex, rel)
  if not m:
    raise ValueError(f"{path}: subject_regex {spec.subject_regex!r} does not "
                     f"match {rel!r}; fix the regex in {spec.path}.")
  subject = m.groupdict().get("subject") or m.group(1 if m.groups() else 0)
  if not subject:
    raise ValueError(f"{path}: subject_regex {spec.subject_regex!r} matches "
                     f"an empty subject in {rel!r}; fix the regex in "
                     f"{spec.path}.")
  return subject


def too_many(errors: list, what: str) -> str:
  listed = "\n".join(f"  - {e}" for e in errors[:MAX_LISTED_ERRORS])
  more = len(errors) - MAX_LISTED_ERRORS
  return (f"{len(errors)} {what}; fix them all, then rebuild:\n{listed}" +
          (f"\n  ... and {more} more" if more > 0 else ""))


def is_comment(line: str, comment: str | None) -> bool:
  return bool(comment) and line.lstrip().startswith(comment)


def first_row(lines: list[str], spec: Spec) -> int:
  """Index of a text file's first row: after `csv.skip_rows` preamble lines,
  blank lines and `csv.comment` lines (the header, or with csv.columns the
  first data row); len(lines) when there is none."""
  i = spec.skip_rows
  while i < len(lines) and (not lines[i].strip()
                            or is_comment(lines[i], spec.comment)):
    i += 1
  return i


def drop_trailing_empty(fields: list[str], n: int) -> list[str]:
  """A row of n fields plus an empty last one (a trailing delimiter, as some
  exporters write) -> its first n fields; any other row unchanged."""
  if len(fields) == n + 1 and not fields[-1].strip():
    return fields[:n]
  return fields


def csv_rows(lines, path, advice: str, delimiter: str = ",", *, start: int = 1,
             comment: str | None = None):
  """Yields (line number, fields) of the CSV records in `lines[start:]`.

  Blank (or whitespace-only) rows and lines starting with `comment` (after
  leading spaces) are skipped; the line number is the record's first line
  in the file, counted from 1 whatever was skipped, so errors name the line
  an editor shows. A row that does not parse is an error naming path:line.

  Args:
    lines: the file's lines (`str.splitlines()`).
    path: the file, for messages.
    advice: what the user should do with a bad row ("fix it.").
    delimiter: the CSV delimiter.
    start: index in `lines` of the first record (default 1: after a header).
    comment: the `csv.comment` marker, or None.
  """
  consumed = []  # File line number of each line the reader took.

  def feed():
    for i in range(start, len(lines)):
      if not is_comment(lines[i], comment):
        consumed.append(i + 1)
        yield lines[i] + "\n"  # Keeps a quoted field's line breaks.
  reader = csv.reader(feed(), delimiter=delimiter)
  while True:
    taken = len(consumed)
    try:
      fields = next(reader)
    except StopIteration:
      return
    except csv.Error as e:
      lineno = consumed[taken] if taken < len(consumed) else start + 1
      raise ValueError(f"{path}:{lineno}: the row does not parse ({e}); "
                       f"{advice}") from None
    if fields and (len(fields) > 1 or fields[0].strip()):
      yield consumed[taken], fields
