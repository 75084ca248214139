# aconnect service image: the API (`aconnect serve`) and Celery workers run from it.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    ACONNECT_DATA_DIR=/data \
    ACONNECT_HOST=0.0.0.0 \
    ACONNECT_PORT=8000

WORKDIR /srv
COPY pyproject.toml README.md ./
COPY aconnect ./aconnect
COPY app ./app
COPY workers ./workers
RUN pip install ".[service]" \
    && useradd --create-home --uid 10001 aconnect \
    && mkdir -p /data && chown aconnect /data

USER aconnect
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=90s --retries=3 \
    CMD ["python", "-c", "import urllib.request, sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status != 200)"]
CMD ["aconnect", "serve"]
