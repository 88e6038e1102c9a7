"""The alert log: the simplest receiver of Alertmanager's webhook, and the default one.

Takes each notification on `POST /` (Alertmanager's webhook JSON) and prints one line per alert
to stdout: `{"status", "alertname", "severity", "summary", "startsAt", "labels"}`, so
`kubectl -n appraise logs deployment/alert-log` lists what fired and what resolved. Answers 200
to a notification, 400 (with the reason) to a body that is not one, and 200 to `GET /` (the
readiness probe). Standard library only; listens on $PORT (default 8080).
"""

import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def alert_lines(notification):
    """One JSON line per alert of a webhook notification; ValueError names what is wrong."""
    if not isinstance(notification, dict) or not isinstance(notification.get("alerts"), list):
        raise ValueError("alerts: missing, or not a list (is this Alertmanager's webhook JSON?)")
    lines = []
    for alert in notification["alerts"]:
        labels = alert.get("labels") or {}
        lines.append(json.dumps({
            "status": alert.get("status"),
            "alertname": labels.get("alertname"),
            "severity": labels.get("severity"),
            "summary": (alert.get("annotations") or {}).get("summary"),
            "startsAt": alert.get("startsAt"),
            "labels": labels,
        }, sort_keys=True))
    return lines


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        self.answer(200, "alert-log: POST Alertmanager webhook notifications to /\n")

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            lines = alert_lines(json.loads(body))
        except ValueError as error:  # json.JSONDecodeError is a ValueError
            self.answer(400, f"not an Alertmanager notification: {error}\n")
            return
        for line in lines:
            print(line, flush=True)
        self.answer(200, "ok\n")

    def answer(self, status, text):
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass  # the alerts are the log


def main():
    port = int(os.environ.get("PORT", "8080"))
    server = ThreadingHTTPServer(("0.0.0.0", port), Handler)
    print(f"alert-log listening on {port}", file=sys.stderr, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
