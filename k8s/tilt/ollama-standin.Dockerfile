# The Ollama stand-in the tests use (bruno_testing.ollama_standin) as an image, for `tilt up`
# without a model: the Ollama HTTP API on port 11434, answers that cite the passages they got.
# Local development only; never published.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
FROM ${PYTHON_IMAGE}
ARG UV_VERSION=0.13.9
RUN pip install --no-cache-dir "uv==${UV_VERSION}"
ENV UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv \
    PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1
COPY . /src
RUN cd /src \
    && uv sync --frozen --no-dev --no-editable --package bruno-testing \
    && rm -rf /src /root/.cache
WORKDIR /app
USER 10001:10001
EXPOSE 11434
CMD ["python", "-c", "import uvicorn; from bruno_testing.ollama_standin import OllamaStandIn; uvicorn.run(OllamaStandIn(models=['llama3.2', 'nomic-embed-text']).app, host='0.0.0.0', port=11434)"]
