"""The predictor's resident memory around large batch requests (`bash bench/predict.sh memory`).

Starts the predictor command given after `--` (it must `exec` the predict binary, so the pid it
gets is the predictor's), waits until `/ready` answers 200, then sends `POST /predict/batch`
bodies of ROWS listings: SEQUENTIAL requests one after another, then CLIENTS clients sending
PER_CLIENT requests each at once. A thread samples VmRSS from /proc/<pid>/status every 10 ms;
each phase reports its peak sample and VmRSS 1 s and 10 s after its last answer. Prints a
Markdown table; standard library only.

    python3 bench/predict_memory.py --port 18082 [--rows 10000 --sequential 20 --clients 4
        --per-client 5 --label NAME] -- bash -c '... exec target/release/predict'
"""

import argparse
import http.client
import json
import random
import subprocess
import sys
import threading
import time

STATES = [
    ("Massachusetts", ["Boston", "Agawam", "Worcester", "Springfield"], 1000),
    ("Texas", ["Austin", "Houston", "Dallas", "El Paso"], 75000),
    ("California", ["Fresno", "San Diego", "Oakland", "Sacramento"], 90000),
    ("New York", ["Buffalo", "Albany", "Rochester", "Ithaca"], 10000),
]


def batch_body(rows, seed):
    """A `{"listings": [...]}` body of `rows` seed-shaped listings, varied like real ones."""
    rng = random.Random(seed)
    listings = []
    for _ in range(rows):
        state, cities, zip_base = rng.choice(STATES)
        listings.append({
            "brokered_by": rng.randint(1, 100_000),
            "status": rng.choice(["for_sale", "sold", "ready_to_build"]),
            "bed": rng.randint(1, 6),
            "bath": rng.randint(1, 4),
            "acre_lot": round(rng.uniform(0.02, 3.0), 2),
            "city": rng.choice(cities),
            "state": state,
            "zip_code": f"{zip_base + rng.randint(0, 999):05d}",
            "house_size": rng.randint(500, 5000),
            "prev_sold_date": f"{rng.randint(1995, 2022)}-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}",
            "street": f"{rng.randint(1, 999)} Main St",
        })
    return json.dumps({"listings": listings}).encode()


def status_kib(pid, field):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/{pid}/status")


class Sampler(threading.Thread):
    """VmRSS every 10 ms; `peak_since(mark)` is the largest sample since `mark` was taken."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.samples, self.lock, self.stopped = pid, [], threading.Lock(), False

    def run(self):
        while not self.stopped:
            rss = status_kib(self.pid, "VmRSS")
            with self.lock:
                self.samples.append(rss)
            time.sleep(0.01)

    def mark(self):
        with self.lock:
            return len(self.samples)

    def peak_since(self, mark):
        with self.lock:
            return max(self.samples[mark:], default=0)


def post_batches(port, body, count, failures):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    for _ in range(count):
        connection.request("POST", "/predict/batch", body, {"content-type": "application/json"})
        response = connection.getresponse()
        answer = response.read()
        if response.status != 200:
            failures.append(f"{response.status}: {answer[:200]!r}")
    connection.close()


def wait_ready(port, child, patience=120):
    deadline = time.time() + patience
    while time.time() < deadline:
        if child.poll() is not None:
            sys.exit(f"the predictor exited with {child.returncode}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/ready")
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    sys.exit("the predictor never became ready")


def mib(kib):
    return f"{kib / 1024:.1f}"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--sequential", type=int, default=20)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--per-client", type=int, default=5)
    parser.add_argument("--label", default="predict")
    parser.add_argument("command", nargs="+")
    args = parser.parse_args()

    body = batch_body(args.rows, seed=42)
    child = subprocess.Popen(args.command)
    try:
        wait_ready(args.port, child)
        time.sleep(2)
        sampler = Sampler(child.pid)
        sampler.start()
        idle = status_kib(child.pid, "VmRSS")
        rows, failures = [], []
        phases = [
            (f"{args.sequential} sequential", 1, args.sequential),
            (f"{args.clients} clients x {args.per_client}", args.clients, args.per_client),
        ]
        for name, clients, each in phases:
            mark = sampler.mark()
            threads = [
                threading.Thread(target=post_batches, args=(args.port, body, each, failures))
                for _ in range(clients)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            time.sleep(1)
            after_1s = status_kib(child.pid, "VmRSS")
            time.sleep(9)
            after_10s = status_kib(child.pid, "VmRSS")
            rows.append((name, sampler.peak_since(mark), after_1s, after_10s))
        sampler.stopped = True
        hwm = status_kib(child.pid, "VmHWM")
    finally:
        child.terminate()
        child.wait()
    if failures:
        sys.exit(f"{len(failures)} requests failed, e.g. {failures[0]}")

    print(f"\n{args.label}: {args.rows:,}-row bodies of {len(body) / 1e6:.1f} MB; "
          f"idle VmRSS {mib(idle)} MiB, VmHWM at the end {mib(hwm)} MiB")
    print("\n| requests | peak VmRSS MiB | VmRSS 1 s after MiB | VmRSS 10 s after MiB |")
    print("|---|---:|---:|---:|")
    for name, peak, after_1s, after_10s in rows:
        print(f"| {name} | {mib(peak)} | {mib(after_1s)} | {mib(after_10s)} |")


if __name__ == "__main__":
    main()
