# Test cases of python.yaml (semgrep --test): every `ruleid:` line must match, no `ok:` line may.
import hmac
import logging
import socket
import urllib.request

import fastapi
import requests
from fastapi import HTTPException

log = logging.getLogger(__name__)


async def servicer(request, context, grpc, store):
    try:
        return await store.search(request)
    except ValueError as exc:
        # ruleid: bruno-exception-text-reaches-the-client
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
    except KeyError as exc:
        # ruleid: bruno-exception-text-reaches-the-client
        await context.abort(grpc.StatusCode.NOT_FOUND, f"no such thing: {exc}")
    except OSError as exc:
        # ruleid: bruno-exception-text-reaches-the-client
        context.set_details(repr(exc))
    except RuntimeError:
        # ok: bruno-exception-text-reaches-the-client
        await context.abort(grpc.StatusCode.INTERNAL, "internal error")


def route(store):
    try:
        return store.get()
    except LookupError as exc:
        # ruleid: bruno-exception-text-reaches-the-client
        raise HTTPException(status_code=404, detail=str(exc)) from exc
    except TimeoutError as exc:
        # ruleid: bruno-exception-text-reaches-the-client
        raise fastapi.HTTPException(503, detail=f"{exc}") from exc
    except ValueError as exc:
        log.warning("lookup failed: %s", exc)
        # ok: bruno-exception-text-reaches-the-client
        raise HTTPException(status_code=422, detail="invalid document id") from exc


def filters(table, document_id, col, lit):
    # ruleid: bruno-lancedb-filter-from-interpolated-text
    table.where(f"document_id = '{document_id}'")
    # ruleid: bruno-lancedb-filter-from-interpolated-text
    table.delete("document_id = '%s'" % document_id)
    # ruleid: bruno-lancedb-filter-from-interpolated-text
    table.delete("document_id = '{}'".format(document_id))
    # ruleid: bruno-lancedb-filter-from-interpolated-text
    table.where("document_id = " + document_id)
    # ok: bruno-lancedb-filter-from-interpolated-text
    table.where(col("document_id") == lit(document_id))
    # ok: bruno-lancedb-filter-from-interpolated-text
    table.delete("chunk_index >= 0")


def calls(url, body):
    # ruleid: bruno-http-call-without-timeout
    urllib.request.urlopen(url)
    # ruleid: bruno-http-call-without-timeout
    requests.post(url, json=body)
    # ruleid: bruno-http-call-without-timeout
    socket.create_connection(("127.0.0.1", 80))
    # ok: bruno-http-call-without-timeout
    urllib.request.urlopen(url, timeout=5)
    # ok: bruno-http-call-without-timeout
    urllib.request.urlopen(url, body, 5)
    # ok: bruno-http-call-without-timeout
    requests.get(url, timeout=5)
    # ok: bruno-http-call-without-timeout
    socket.create_connection(("127.0.0.1", 80), 2)


def keys(presented, api_key, settings, digest):
    # ruleid: bruno-secret-compared-in-variable-time
    if presented == api_key:
        return True
    # ruleid: bruno-secret-compared-in-variable-time
    if settings.password != presented:
        return False
    # ok: bruno-secret-compared-in-variable-time
    if api_key is None or api_key == "":
        return False
    # ok: bruno-secret-compared-in-variable-time
    return hmac.compare_digest(digest(presented), digest(api_key))


def logs(api_keys, password, tokens):
    # ruleid: bruno-secret-in-log-message
    log.info("keys: %s", api_keys)
    # ruleid: bruno-secret-in-log-message
    log.debug(f"logging in with {password}")
    # ok: bruno-secret-in-log-message
    log.info("%d API keys configured", len(api_keys))
    # ok: bruno-secret-in-log-message
    log.info("used %d tokens", tokens)


def not_secrets(secret_count, keys_path, api_key_header, error):
    # ok: bruno-secret-compared-in-variable-time
    if secret_count == 0:
        return None
    # ok: bruno-secret-compared-in-variable-time
    if error.err_code == pdfium_c.FPDF_ERR_PASSWORD:
        return None
    # ruleid: bruno-secret-compared-in-variable-time
    if error.password == presented:
        return None
    # ok: bruno-secret-in-log-message
    log.info("reading keys from %s", keys_path)
    # ruleid: bruno-secret-in-log-message
    log.info("header %s", api_key_header.api_key)
    return None
