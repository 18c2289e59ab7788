"""The README is the operator's reference: it must list every setting and every route there is."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic_settings import BaseSettings

from bruno_core.settings import environment_variables
from bruno_edge.app import create_app
from bruno_edge.config import EdgeSettings
from bruno_embedding.config import EmbeddingSettings
from bruno_generation.config import GenerationSettings
from bruno_retrieval.config import RetrievalSettings

README = Path(__file__).resolve().parents[2] / "README.md"
SETTINGS: list[type[BaseSettings]] = [
    EmbeddingSettings,
    RetrievalSettings,
    GenerationSettings,
    EdgeSettings,
]
# Read by the OpenTelemetry SDK itself, not by a settings class.
READ_BY_LIBRARIES = {"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_TRACES_SAMPLER"}


def documented() -> dict[str, str]:
    """Variable → its table row, from the README's settings table."""
    rows = re.findall(r"^\| `([A-Z_]+)` \|(.*)$", README.read_text(), re.MULTILINE)
    return dict(rows)


def test_every_setting_is_in_the_readme_and_nothing_else() -> None:
    actual = set().union(*(environment_variables(cls) for cls in SETTINGS))
    assert set(documented()) - READ_BY_LIBRARIES == actual


def test_the_readme_states_each_settings_default() -> None:
    rows = documented()
    for cls in SETTINGS:
        prefix = str(cls.model_config.get("env_prefix", ""))
        for field_name, field in cls.model_fields.items():
            name = f"{prefix}{field_name}".upper()
            if name not in rows or field.default is None or isinstance(field.default, frozenset):
                continue
            default = field.default
            if isinstance(default, bool):  # as it is written in the environment
                shown = str(default).lower()
            elif isinstance(default, float) and default.is_integer():
                shown = str(int(default))
            else:
                shown = str(default)
            assert f"`{shown}`" in rows[name], (name, shown)


def test_every_route_of_the_edge_is_in_the_readme() -> None:
    documented_routes = set(
        re.findall(r"^\| `(GET|POST|DELETE) ([^`]+)`", README.read_text(), re.MULTILINE)
    )
    served = {
        (method.upper(), path)
        for path, operations in create_app().openapi()["paths"].items()
        for method in operations
    }
    # The README writes path parameters by what they are; the schema by their Python names.
    normalised = {
        (method, path.replace("{document_id}", "{id}").replace("{conversation_id}", "{id}"))
        for method, path in served
    }
    assert normalised <= documented_routes
