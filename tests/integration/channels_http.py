"""Blocking HTTP calls for the channel and case tests (plain functions, so
async tests call them the same way they call tests.harness.post_work)."""

from __future__ import annotations

from typing import Any

import httpx

from tests.helpers import http


def get(url: str, **kw: Any) -> httpx.Response:
    kw.setdefault("timeout", 10)
    return http().get(url, **kw)


def post(url: str, **kw: Any) -> httpx.Response:
    kw.setdefault("timeout", 10)
    return http().post(url, **kw)


def put(url: str, **kw: Any) -> httpx.Response:
    kw.setdefault("timeout", 10)
    return http().put(url, **kw)


def delete(url: str, **kw: Any) -> httpx.Response:
    kw.setdefault("timeout", 10)
    return http().delete(url, **kw)
