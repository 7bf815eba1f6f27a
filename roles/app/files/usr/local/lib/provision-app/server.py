#!/usr/bin/python3
"""The sample application: one page showing the running release and what it reads from its database.

It serves on loopback only (nginx is in front) and reads the release from <root>/current on every request,
so a deploy needs no restart. Installed by provisioner's `app` role.
"""

import argparse
import html
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def read_release(root):
    current = Path(root) / "current"
    try:
        meta = json.loads((current / ".provision-release").read_text())
        version = (current / "VERSION").read_text().strip()
        body = (current / "index.html").read_text() if (current / "index.html").exists() else ""
    except (OSError, ValueError):
        return None
    return {"release": meta.get("release", ""), "digest": meta.get("digest", ""), "version": version, "body": body}


def read_database(config_file):
    try:
        settings = json.loads(Path(config_file).read_text())
    except (OSError, ValueError):
        return "no database settings"
    if not settings.get("host"):
        return "no database configured"
    try:
        import psycopg2

        with psycopg2.connect(connect_timeout=3, **settings) as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT current_database(), (SELECT count(*) FROM information_schema.tables"
                " WHERE table_schema = 'public')"
            )
            name, tables = cur.fetchone()
        conn.close()
        return f"database {name} on {settings['host']}: {tables} tables"
    except Exception as exc:  # the page says what went wrong instead of failing
        return f"database {settings.get('dbname')} on {settings['host']} unavailable ({type(exc).__name__})"


def page(release, database):
    if release is None:
        title, attrs, content = "Example shop", 'data-release="" data-version=""', "<p>No release deployed yet.</p>"
        footer = "no release"
    else:
        title = f"Example shop {html.escape(release['version'])}"
        attrs = f'data-release="{html.escape(release["release"])}" data-version="{html.escape(release["version"])}"'
        content = release["body"]
        footer = f"release {html.escape(release['release'])} version {html.escape(release['version'])}"
    return (
        f'<!doctype html><html><head><meta charset="utf-8"><title>{title}</title></head>'
        f"<body {attrs}><main>{content}</main>"
        f'<footer><p id="release">{footer}</p><p id="database">{html.escape(database)}</p></footer>'
        "</body></html>\n"
    )


class Handler(BaseHTTPRequestHandler):
    root = "/srv/app"
    config = "/etc/provision-app/database.json"

    def do_GET(self):
        if self.path == "/health":
            self._send(200, "text/plain", "ok\n")
            return
        if self.path not in ("/", "/index.html"):
            self._send(404, "text/html", "<!doctype html><html><body><p>not found</p></body></html>\n")
            return
        self._send(200, "text/html; charset=utf-8", page(read_release(self.root), read_database(self.config)))

    def _send(self, status, content_type, text):
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format, *args):  # nginx keeps the access log
        pass


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--root", default="/srv/app")
    parser.add_argument("--config", default="/etc/provision-app/database.json")
    args = parser.parse_args()
    Handler.root, Handler.config = args.root, args.config
    ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
