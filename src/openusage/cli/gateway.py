"""``openusage fake-upstream``: an OpenAI-compatible model server to try the gateway with."""

from __future__ import annotations

import click


@click.command("fake-upstream")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=int, default=9000, show_default=True, help="Port to listen on.")
def fake_upstream(host: str, port: int) -> None:
    """Answer OpenAI's model endpoints with made-up content and usage (no key, no network).

    For demos and tests of the gateway: serve with --upstream http://HOST:PORT/v1.
    """
    import uvicorn

    from ..gateway.fake import create_fake_upstream

    click.echo(f"Fake OpenAI-compatible upstream on http://{host}:{port}/v1")
    uvicorn.run(create_fake_upstream(), host=host, port=port, log_level="warning")
