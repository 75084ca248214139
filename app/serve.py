"""``aconnect serve``: the API with embedded workers (or Celery with a broker URL) on one machine.

On first start it creates an API token, prints it, and writes URL and token to
``~/.aconnect/server.json`` (mode 0600) where the client and the command line find them —
like a notebook server's token.
"""

from __future__ import annotations

import argparse
import json
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


def _service_installed(console) -> bool:
    """Whether the service's extras are installed; says what to install when not."""
    try:
        import fastapi  # noqa: F401
        import pydantic_settings  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as err:
        console.print(f"the service needs its extras ({err.name} is missing): "
                      "pip install -e '.[service]'", markup=False)
        return False
    return True


def create_token(args: argparse.Namespace, console) -> int:
    if not _service_installed(console):
        return 2
    from app.auth import TokenStore
    from app.settings import Settings

    settings = Settings(**({"data_dir": args.data_dir} if args.data_dir else {}))
    print(TokenStore(settings.tokens_file).create(args.owner))
    return 0


def local_token(settings, url: str) -> str:
    """The local owner's token: reuse the saved one if it is still valid, else make one."""
    from aconnect.client import local_server_file
    from aconnect.files import atomic_write
    from app.auth import TokenStore

    tokens = TokenStore(settings.tokens_file)
    saved = local_server_file()
    if saved.is_file():
        token = json.loads(saved.read_text()).get("token")
        if token and tokens.owner(token):
            atomic_write(saved, json.dumps({"url": url, "token": token}).encode(), 0o600)
            return token
    token = tokens.create("local")
    atomic_write(saved, json.dumps({"url": url, "token": token}).encode(), 0o600)
    return token


def run(args: argparse.Namespace, console) -> int:
    if not _service_installed(console):
        return 2
    import uvicorn

    from app.main import create_app
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
