# Local stand-in for the full `python:3.11-bookworm` image (what `FROM python:3.11` means),
# built by `scripts/base-image.sh full` when Docker Hub cannot be reached. A test fixture for
# scripts/benchmark_images.py's conventional naive baseline; never published.
#
# The official image is buildpack-deps:bookworm (debian:bookworm + three package layers) with
# CPython compiled into /usr/local. Here: the debootstrap bookworm of the slim stand-in (which
# already has Debian's python3.11, venv and pip, laid out under /usr/local/bin like the
# official image) plus buildpack-deps:bookworm's package lists, verbatim, in the same three
# layers, and Debian's python3.11-dev for the headers and libpython that the official image's
# /usr/local install carries. Lists from docker-library/buildpack-deps, debian/bookworm/
# {curl,scm,}/Dockerfile (the scm layer as shipped in python:3.11.16-bookworm, without git-lfs).
ARG BASE=python:3.11-slim-bookworm
FROM ${BASE}

ARG DEBIAN_FRONTEND=noninteractive

# debian:bookworm's apt settings for images (debuerreotype's docker-clean): downloaded .deb
# files are deleted after each install, so no layer keeps them. debootstrap does not set this.
RUN set -eux; \
    printf '%s\n' \
        'DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };' \
        'APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };' \
        'Dir::Cache::pkgcache ""; Dir::Cache::srcpkgcache "";' \
        > /etc/apt/apt.conf.d/docker-clean; \
    echo 'Acquire::Languages "none";' > /etc/apt/apt.conf.d/docker-no-languages

# buildpack-deps:bookworm-curl
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends \
        ca-certificates \
        curl \
        gnupg \
        netbase \
        sq \
        wget \
    ; \
    rm -rf /var/lib/apt/lists/*

# buildpack-deps:bookworm-scm
RUN apt-get update && apt-get install -y --no-install-recommends \
        git \
        mercurial \
        openssh-client \
        subversion \
        \
        procps \
    && rm -rf /var/lib/apt/lists/*

# buildpack-deps:bookworm
RUN set -ex; \
    apt-get update; \
    apt-get install -y --no-install-recommends \
        autoconf \
        automake \
        bzip2 \
        default-libmysqlclient-dev \
        dpkg-dev \
        file \
        g++ \
        gcc \
        imagemagick \
        libbz2-dev \
        libc6-dev \
        libcurl4-openssl-dev \
        libdb-dev \
        libevent-dev \
        libffi-dev \
        libgdbm-dev \
        libglib2.0-dev \
        libgmp-dev \
        libjpeg-dev \
        libkrb5-dev \
        liblzma-dev \
        libmagickcore-dev \
        libmagickwand-dev \
        libmaxminddb-dev \
        libncurses5-dev \
        libncursesw5-dev \
        libpng-dev \
        libpq-dev \
        libreadline-dev \
        libsqlite3-dev \
        libssl-dev \
        libtool \
        libwebp-dev \
        libxml2-dev \
        libxslt-dev \
        libyaml-dev \
        make \
        patch \
        unzip \
        xz-utils \
        zlib1g-dev \
    ; \
    rm -rf /var/lib/apt/lists/*

# python:3.11-bookworm: the interpreter with its headers (python3.11, venv and pip come from
# the slim stand-in, with python, python3, python3.11 and pip in /usr/local/bin).
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends python3.11-dev; \
    rm -rf /var/lib/apt/lists/*; \
    python --version; pip --version; gcc --version | head -1

CMD ["python3"]
