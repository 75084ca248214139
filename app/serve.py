"""``aconnect serve``: the API with embedded workers (or Celery with a broker URL) on one machine.

On first start it creates an API token, prints it, and writes URL and token to
``~/.aconnect/server.json`` (mode 0600) where the client and the command line find them —
like a notebook server's token.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path


def register(commands) -> None:
    """Add ``serve`` to the ``aconnect`` command line (an ``aconnect.commands`` entry point)."""
    serve = commands.add_parser("serve", help="run the HTTP service on this machine",
                                description=__doc__.splitlines()[0])
    serve.add_argument("--host", help="bind address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default 8000)")
    serve.add_argument("--data-dir", type=Path, help="jobs and tokens (default ./aconnect-data)")
    serve.set_defaults(handler=run)
    token = commands.add_parser("token", help="create an API token for an owner (admin)",
                                description="Create a bearer token for OWNER in the service's "
                                            "data folder and print it (it is stored hashed).")
    token.add_argument("owner", help="who the token belongs to; jobs are visible per owner")
    token.add_argument("--data-dir", type=Path, help="service data folder")
    token.set_defaults(handler=create_token)


def create_token(args: argparse.Namespace, console) -> int:
    try:
        from app.auth import TokenStore
        from app.settings import Settings
    except ImportError as err:
        console.print(f"the service needs its extras ({err.name} is missing): "
                      "pip install -e '.[service]'", markup=False)
        return 2

    settings = Settings(**({"data_dir": args.data_dir} if args.data_dir else {}))
    print(TokenStore(settings.tokens_file).create(args.owner))
    return 0


def local_token(settings, url: str) -> str:
    """The local owner's token: reuse the saved one if it is still valid, else make one."""
    from aconnect.client import local_server_file
    from app.auth import TokenStore

    tokens = TokenStore(settings.tokens_file)
    saved = local_server_file()
    if saved.is_file():
        token = json.loads(saved.read_text()).get("token")
        if token and tokens.owner(token):
            _save(saved, url, token)
            return token
    token = tokens.create("local")
    _save(saved, url, token)
    return token


def _save(path: Path, url: str, token: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps({"url": url, "token": token}))
    os.chmod(tmp, 0o600)
    tmp.replace(path)


def run(args: argparse.Namespace, console) -> int:
    try:
        import uvicorn

        from app.main import create_app
    except ImportError as err:
        console.print(f"the service needs its extras ({err.name} is missing): "
                      "pip install -e '.[service]'", markup=False)
        return 2
    from app.settings import Settings

    overrides = {k: v for k, v in {"host": args.host, "port": args.port,
                                   "data_dir": args.data_dir}.items() if v is not None}
    settings = Settings(**overrides)
    url = f"http://{settings.host}:{settings.port}"
    token = local_token(settings, url)
    mode = f"Celery via {settings.broker_url}" if settings.broker_url else (
        f"{settings.embedded_workers} embedded worker(s)")
    console.print(f"aconnect service on {url} ({mode}); data in {settings.data_dir}")
    console.print(f"API token: {token}  (saved for the CLI in ~/.aconnect/server.json)")
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="info")
    return 0
