"""The live page's HTTP server: one page, JSON polls, strict headers.

  GET /                 the page: one stream's, or with several streams an
                        overview listing them (the page asks /streams)
  GET /s/<i>/           stream i's page
  GET /state, /s/<i>/state?since=N[&limit=M][&fps=F]
                        frames after N (-1: all kept, and the static part:
                        classes, channels, model card), scores, health;
                        a bad N, M or F answers 400 naming it
  GET /streams          the overview: one summary per stream

Every response carries a Content-Security-Policy that allows only the page's
own inline script and style (by their SHA-256) and requests to this origin:
no external assets, no eval, no inline event handlers, no images, no forms
or frames. Requests whose Host header is not this server's address (DNS
rebinding) are refused (403). The page puts data on screen with textContent
and DOM APIs only, so class, channel and file names show as text.
"""

import base64
import hashlib
import http.server
import json
import math
import pathlib
import re
import sys
import traceback
import urllib.parse

PAGE = pathlib.Path(__file__).with_name("page.html")
MAX_FRAME = 2**53


def _hashes(html: str, tag: str) -> str:
  """CSP source expressions of the inline <tag> blocks of `html`."""
  blocks = re.findall(rf"<{tag}>(.*?)</{tag}>", html, re.S)
  return " ".join(
      "'sha256-" + base64.b64encode(hashlib.sha256(b.encode()).digest())
      .decode() + "'" for b in blocks)


def content_security_policy(html: str) -> str:
  return ("default-src 'none'; script-src " + _hashes(html, "script")
          + "; style-src " + _hashes(html, "style") + "; connect-src 'self';"
          " img-src 'none'; base-uri 'none'; form-action 'none'; "
          "frame-ancestors 'none'")


class BadRequest(ValueError):
  pass


def _int(q: dict, key: str, default: int, low: int, high: int) -> int:
  text = q.get(key, [str(default)])[-1]
  if not re.fullmatch(r"-?\d{1,16}", text) or not low <= int(text) <= high:
    raise BadRequest(f"{key}={text[:40]!r}: expected an integer from {low} "
                     f"to {high}" + (" (the last frame the page has; -1 for "
                                     "all)" if key == "since" else "") + ".")
  return int(text)


def _fps(q: dict):
  if "fps" not in q:
    return None
  text = q["fps"][-1]
  try:
    v = float(text)
  except ValueError:
    v = math.nan
  if not 0 <= v <= 1000:
    raise BadRequest(f"fps={text[:40]!r}: expected a number from 0 to 1000.")
  return round(v, 2)


def make_handler(sessions: list, host: str, port_ref: list):
  """The request handler class serving `sessions` (one per stream).

  `port_ref[0]` is the bound port (known once the server is made).
  """
  html = PAGE.read_text(encoding="utf-8")
  page = html.encode()
  csp = content_security_policy(html)

  class Handler(http.server.BaseHTTPRequestHandler):
    server_version = "imujax-live"

    def _send(self, code: int, body: bytes, kind: str):
      self.send_response(code)
      self.send_header("Content-Type", kind)
      self.send_header("Content-Length", str(len(body)))
      self.send_header("Cache-Control", "no-store")
      self.send_header("Content-Security-Policy", csp)
      self.send_header("X-Content-Type-Options", "nosniff")
      self.send_header("Referrer-Policy", "no-referrer")
      self.send_header("Cross-Origin-Resource-Policy", "same-origin")
      self.end_headers()
      self.wfile.write(body)

    def _text(self, code: int, message: str):
      self._send(code, (message + "\n").encode(), "text/plain; charset=utf-8")

    def _host_ok(self) -> bool:
      allowed = {f"{h}:{port_ref[0]}" for h in
                 ("127.0.0.1", "localhost", host, f"[{host}]")}
      return self.headers.get("Host", "") in allowed

    def do_GET(self):  # noqa: N802  (http.server's name)
      try:
        self._get()
      except BadRequest as e:
        self._text(400, f"Bad request {self.path[:100]!r}: {e}")
      except (BrokenPipeError, ConnectionResetError):
        pass
      except Exception as e:  # Answer, never drop the connection.
        traceback.print_exc(file=sys.stderr)
        self._text(500, f"Internal error: {type(e).__name__}: {e}")

    def _get(self):
      if not self._host_ok():
        self._text(403, f"Host {self.headers.get('Host', '')[:60]!r} is not "
                   f"this server: open http://127.0.0.1:{port_ref[0]}/ .")
        return
      url = urllib.parse.urlsplit(self.path)
      q = urllib.parse.parse_qs(url.query, keep_blank_values=True)
      m = re.fullmatch(r"(?:/s/(\d{1,6}))?/(state)?", url.path)
      if url.path == "/streams":
        body = json.dumps([s.summary() for s in sessions]).encode()
        self._send(200, body, "application/json")
      elif m:
        i = int(m.group(1) or 0)
        if i >= len(sessions):
          self._text(404, f"No stream {i}: streams are 0 to "
                     f"{len(sessions) - 1} (see /).")
        elif m.group(2):
          since = _int(q, "since", -1, -1, MAX_FRAME)
          limit = _int(q, "limit", 100000, 1, 10**6)
          body = sessions[i].state_json(since, limit, _fps(q))
          self._send(200, body, "application/json")
        else:
          self._send(200, page, "text/html; charset=utf-8")
      elif re.fullmatch(r"/s/\d{1,6}", url.path):
        self.send_response(301)
        self.send_header("Location", url.path + "/")
        self.send_header("Content-Length", "0")
        self.end_headers()
      else:
        self._text(404, f"Not found: {url.path[:100]!r}; the page is at /.")

    def log_message(self, *args):  # Quiet: one line per poll otherwise.
      pass

  return Handler


def serve(sessions: list, host: str = "127.0.0.1", port: int = 0):
  """A started-later ThreadingHTTPServer for `sessions`."""
  port_ref = [port]
  server = http.server.ThreadingHTTPServer(
      (host, port), make_handler(sessions, host, port_ref))
  server.daemon_threads = True
  port_ref[0] = server.server_address[1]
  return server
