"""Blocking HTTP calls for the channel and case tests (plain functions, so
async tests call them the same way they call tests.harness.post_work)."""

from __future__ import annotations

from typing import Any

import httpx


def get(url: str, **kw: Any) -> httpx.Response:
    kw.setdefault("timeout", 10)
    return httpx.get(url, **kw)


def post(url: str, **kw: Any) -> httpx.Response:
    kw.setdefault("timeout", 10)
    return httpx.post(url, **kw)


def put(url: str, **kw: Any) -> httpx.Response:
    kw.setdefault("timeout", 10)
    return httpx.put(url, **kw)


def delete(url: str, **kw: Any) -> httpx.Response:
    kw.setdefault("timeout", 10)
    return httpx.delete(url, **kw)
