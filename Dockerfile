# tapeproxy as a container: `tapeproxy serve` on 0.0.0.0:8080.
# Cassettes live on the /cassettes volume, the proxy's CA on /ca (mount it to keep the CA, and
# give /ca/mitmproxy-ca-cert.pem to the clients that go through the proxy). It replays by
# default; to record on 0.0.0.0, set TAPEPROXY_PROXY_AUTH=user:password (clients then use
# http://user:password@host:8080), or TAPEPROXY_ALLOW_OPEN_PROXY=1 on a network of your own.
FROM python:3.12-slim

# The proxy re-runs itself as `python -O` and reads its optimized bytecode from
# TAPEPROXY_PYCACHE, compiled below: the user cannot write bytecode at run time.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TAPEPROXY_PYCACHE=/opt/tapeproxy/pycache \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY tapeproxy ./tapeproxy
# The library folder is asked of the interpreter: the base image decides the Python version.
RUN pip install . \
    && python -O -X pycache_prefix=/opt/tapeproxy/pycache -m compileall -q -j 0 \
        -x '/(test|idlelib|tkinter|lib2to3|ensurepip)/' \
        "$(python -c 'import sysconfig; print(sysconfig.get_path("stdlib"))')" \
        "$(python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')" \
    && useradd --create-home --uid 10001 tapeproxy \
    && mkdir -p /cassettes /ca \
    && chown tapeproxy:tapeproxy /cassettes /ca

USER 10001:10001
WORKDIR /cassettes
VOLUME ["/cassettes", "/ca"]
EXPOSE 8080 8081

ENV TAPEPROXY_RECORD_MODE=none \
    TAPEPROXY_CASSETTE=/cassettes/tapeproxy.json.zst \
    TAPEPROXY_CONFDIR=/ca \
    TAPEPROXY_LISTEN=0.0.0.0:8080 \
    TAPEPROXY_ROUTES_PORT=8081

HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import socket; socket.create_connection(('127.0.0.1', 8080), 2).close()"]

ENTRYPOINT ["tapeproxy"]
CMD ["serve"]
