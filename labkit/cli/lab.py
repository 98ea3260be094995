"""`labkit lab`: serve the lab notebook as a Voila dashboard and print its URL."""
from __future__ import annotations

import argparse
import os
import socket
import signal
import subprocess
import sys
import threading
from pathlib import Path


# Each page load starts a kernel (0.6-1.6 GB with torch and a run's data). Voila asks the server to shut it
# down when the page unloads, and culling catches what that request misses (a crashed tab, a lost network):
# a kernel without any open page is shut down after CULL_IDLE seconds idle. A page left open keeps its kernel
# (cull_connected=False), however long it trains.
CULL_IDLE = 120


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("lab", help="open the training lab (a Voila dashboard) in the browser",
                       description="Start Voila on the lab notebook and print the URL. Runs go to --runs.")
    p.add_argument("--port", type=int, default=8866, help="port to serve on (0 = any free port; default 8866)")
    p.add_argument("--ip", default="127.0.0.1", help="address to listen on (default: loopback only)")
    p.add_argument("--no-browser", action="store_true", help="do not open a browser; just print the URL")
    p.add_argument("--runs", default="runs", help="run store directory (default: ./runs)")
    p.add_argument("--cull-idle", type=int, default=CULL_IDLE, metavar="SECONDS",
                   help=f"shut down a page's kernel this long after its page is gone (default {CULL_IDLE}; 0 = never)")
    p.set_defaults(func=run)


def free_port(ip: str = "127.0.0.1") -> int:
    """A port the OS says is free now."""
    with socket.socket() as s:
        s.bind((ip, 0))
        return int(s.getsockname()[1])


def voila_command(notebook: Path, port: int, ip: str, browser: bool, cull_idle: int = CULL_IDLE) -> list[str]:
    """The Voila command line for `notebook` (the current interpreter's voila, so its kernel sees labkit)."""
    cmd = [sys.executable, "-m", "voila", str(notebook), f"--port={port}", f"--Voila.ip={ip}",
           "--show_tracebacks=False", "--theme=light",
           # Voila 0.5's page sends its unload shutdown request with the _xsrf cookie, which its streamed page
           # never sets, so every request failed with 403 and each reload left a kernel running
           # (voila-dashboards/voila#1458). Without a token anyone who reaches the port can already run code in
           # the lab, so the forgery check protects nothing here; shutting kernels down does.
           "--Voila.tornado_settings=disable_check_xsrf=True"]
    if cull_idle > 0:
        cmd += [f"--MappingKernelManager.cull_idle_timeout={cull_idle}",
                f"--MappingKernelManager.cull_interval={max(1, min(60, cull_idle // 4))}",
                "--MappingKernelManager.cull_connected=False"]
    if not browser:
        cmd.append("--no-browser")
    return cmd


def lab_env(runs: str) -> dict[str, str]:
    """The environment for Voila's kernels: the run store, and labkit importable even when not installed."""
    from .. import __file__ as pkg_file

    env = dict(os.environ)
    env["LABKIT_RUNS"] = str(Path(runs).resolve())
    # the kernels run in the notebook's folder: a relative LABKIT_DATA (../shared/data) must mean what it meant here
    if env.get("LABKIT_DATA"):
        env["LABKIT_DATA"] = str(Path(env["LABKIT_DATA"]).expanduser().resolve())
    root = str(Path(pkg_file).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    return env


def run(args: argparse.Namespace) -> int:
    from ..widgets.notebook import find_notebook

    notebook = find_notebook()
    port = args.port or free_port(args.ip)
    url = f"http://{args.ip}:{port}/"
    print(f"labkit lab: serving {notebook} at {url}  (Ctrl-C to stop; runs go to {Path(args.runs).resolve()})",
          flush=True)
    proc = subprocess.Popen(voila_command(notebook, port, args.ip, not args.no_browser, args.cull_idle),
                            env=lab_env(args.runs),
                            cwd=str(notebook.parent))

    def _stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    # `kill` (SIGTERM) stops the lab like Ctrl-C does: Voila is told to shut down, and it shuts down its kernels,
    # instead of living on as an orphan with a kernel per open page
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _stop)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        return 0
