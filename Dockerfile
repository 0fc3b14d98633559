# syntax=docker/dockerfile:1
# Stages: build (venv with the service), test (adds dev and embedded extras), runtime (final).
ARG PYTHON_IMAGE=python:3.12.8-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# The exact versions CI tested (make lock), then the project itself adding nothing.
COPY requirements.lock ./
RUN pip install -r requirements.lock
COPY pyproject.toml README.md ./
COPY streamapp ./streamapp
RUN pip install --no-deps .

FROM build AS test
# The dashboard test drives Debian's chromium with playwright.
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY . .
RUN pip install -r requirements-dev.lock && pip install --no-deps -e .
CMD ["pytest", "-q"]

FROM ${PYTHON_IMAGE} AS runtime
RUN useradd --system --uid 10001 --no-create-home --home-dir /app streamapp
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY alembic.ini ./
COPY migrations ./migrations
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 WORKER_DATA_DIR=/tmp/streamapp-data
USER streamapp
EXPOSE 8000 6066
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=2)"]
CMD ["streamapp", "api", "--host", "0.0.0.0", "--port", "8000"]
