# respkv: one node per container. Build: docker build -t respkv .
# Run:   docker run -v respkv-data:/data -p 6379:6379 respkv            (a single node)
#        docker compose up                                               (3 nodes, see
#                                                                         docker-compose.yml)
# The config is /etc/respkv/respkv.toml (mount your own, or set RESPKV_CONFIG); data in /data.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY respkv ./respkv
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
COPY --from=build /install /usr/local
RUN groupadd --system --gid 10001 respkv \
    && useradd --system --uid 10001 --gid respkv --home-dir /data --shell /usr/sbin/nologin respkv \
    && mkdir -p /data /etc/respkv \
    && chown respkv:respkv /data
# n1..n3.toml (the compose cluster) and respkv.toml (a single node on every interface of the
# container, data in /data, metrics on 9121).
COPY config/docker/ /etc/respkv/
ENV RESPKV_CONFIG=/etc/respkv/respkv.toml \
    PYTHONUNBUFFERED=1
USER respkv
VOLUME ["/data"]
WORKDIR /data
# Client (RESP), peer (Raft) and metrics ports of node 1; nodes 2 and 3 of the compose file
# use 6380/9082/9122 and 6381/9083/9123.
EXPOSE 6379 9081 9121 6380 9082 9122 6381 9083 9123
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["respkv", "health"]
# SIGTERM makes a leader hand leadership over before exiting: give it time (docker stop -t 30).
STOPSIGNAL SIGTERM
ENTRYPOINT ["respkv"]
CMD ["serve"]
