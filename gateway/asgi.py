"""Entry point for uvicorn workers: build the app from the environment and config file."""

from __future__ import annotations

from starlette.applications import Starlette

from gateway.app import create_app
from gateway.settings import load_settings


def create_from_environment() -> Starlette:
    return create_app(load_settings())
