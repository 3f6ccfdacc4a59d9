# The costwise daemon image.
#
#   docker build -t costwise:0.1.0 .            FROM python:3.11-slim, dependencies from PyPI
#
# Offline (no registry, no PyPI): pass a base that already holds the dependencies and tell pip not to
# fetch anything, as tests/integration/test_image.py does with a base assembled by tests/platform_image.py:
#   docker build --build-arg BASE=costwise-base:local \
#     --build-arg PIP_ARGS="--no-index --no-deps --no-build-isolation" -t costwise:local .
ARG BASE=python:3.11-slim
FROM ${BASE}

ARG PIP_ARGS=""
ENV PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    COSTWISE_HOME=/var/lib/costwise \
    COSTWISE_PORT=9464

COPY pyproject.toml README.md /src/
COPY scheduler /src/scheduler
COPY provider /src/provider
# Compiled at install: the daemon and every CLI call in the container start without recompiling.
# Every extra the daemon can use (a PostgreSQL catalog, the docker and kubernetes backends, GPU sampling,
# Arrow reports); not pulumi, which runs where `pulumi up` does.
RUN python -m pip install --no-cache-dir ${PIP_ARGS} "/src[postgres,docker,kubernetes,gpu,fast-reports]" \
 && rm -rf /src /root/.cache \
 && python -m compileall -q "$(python -c 'import scheduler, os; print(os.path.dirname(scheduler.__file__))')" \
 && echo "costwise:x:10001:10001:costwise:/var/lib/costwise:/sbin/nologin" >> /etc/passwd \
 && echo "costwise:x:10001:" >> /etc/group \
 && mkdir -p /var/lib/costwise \
 && chown 10001:10001 /var/lib/costwise

# Numeric, so Kubernetes' runAsNonRoot can check it.
USER 10001:10001
WORKDIR /var/lib/costwise
VOLUME ["/var/lib/costwise"]
EXPOSE 9464

HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('COSTWISE_PORT', '9464'), timeout=4)"]

# Off loopback the daemon needs its token: give COSTWISE_API_TOKEN (and COSTWISE_DB for PostgreSQL).
ENTRYPOINT ["costwise"]
CMD ["daemon", "--host", "0.0.0.0", "--metrics-port", "9464"]
