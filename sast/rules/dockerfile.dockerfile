# Test cases of dockerfile.yaml (semgrep --test).
FROM python:3.11-slim-bookworm AS example
# ruleid: bruno-dockerfile-pipes-a-download-into-a-shell
RUN curl -fsSL https://example.invalid/install.sh | sh
# ruleid: bruno-dockerfile-pipes-a-download-into-a-shell
RUN apt-get update && wget -qO- https://example.invalid/setup | bash -s -- --yes
# ok: bruno-dockerfile-pipes-a-download-into-a-shell
RUN curl -fsSLo /tmp/tool.tgz https://example.invalid/tool.tgz && sha256sum -c tool.sha256
# ok: bruno-dockerfile-pipes-a-download-into-a-shell
RUN pip install --no-cache-dir "uv==0.13.9"
# ruleid: bruno-dockerfile-add-from-a-url
ADD https://example.invalid/tool.tar.gz /opt/
# ok: bruno-dockerfile-add-from-a-url
ADD tool.tar.gz /opt/
# ruleid: bruno-dockerfile-runs-as-root
USER root
# ruleid: bruno-dockerfile-runs-as-root
USER 0:0
# ok: bruno-dockerfile-runs-as-root
USER 10001:10001
