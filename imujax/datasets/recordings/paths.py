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


def label_path(spec: Spec, data_path) -> epath.Path:
  """The segment file of a data file: `labels.file` with {stem}, {name}.

  A plain substitution (never `str.format`, which would evaluate attribute
  lookups such as `{stem.__class__}` written in the spec).
  """
  data_path = epath.Path(data_path)
  fields = {"stem": data_path.stem, "name": data_path.name}
  name = re.sub(r"\{(stem|name)\}", lambda m: fields[m.group(1)],
                spec.label_file)
  if ".." in re.split(r"[\\/]", name):
    raise ValueError(f"{data_path}: labels.file gives {name!r}, outside the "
                     "data folder; rename the file.")
  return data_path.parent / name


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
  if spec.label_file:
    label_names = {label_path(spec, p).name for p in files}
    files = [p for p in files if p.name not in label_names]
  if not files:
    raise FileNotFoundError(
        f"{folder}: no data files match files={spec.files!r} ({spec.path}). "
        "Point manual_dir (or the spec's folder) at the data.")
  return files


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


def csv_rows(rows, path, advice: str, delimiter: str = ","):
  """Yields (line number, fields) of CSV `rows` after the header, skipping
  empty rows; a row that does not parse is an error naming path:line.

  Args:
    rows: the file's lines, the header first.
    path: the file, for messages.
    advice: what the user should do with a bad row ("fix it.").
    delimiter: the CSV delimiter.
  """
  reader = csv.reader(rows[1:], delimiter=delimiter)
  lineno = 1
  while True:
    try:
      fields = next(reader)
    except StopIteration:
      return
    except csv.Error as e:
      raise ValueError(f"{path}:{lineno + 1}: the row does not parse ({e}); "
                       f"{advice}") from None
    lineno = reader.line_num + 1
    if fields:
      yield lineno, fields
