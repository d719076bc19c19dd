# The controller image: `spillover controller run`, as charts/spillover-controller runs it.
# It holds the `controller` extra only (prometheus-client, kubernetes, boto3 beside pydantic and
# PyYAML): no onnxruntime, nvidia-pytriton, tritonclient or matplotlib, which serve and plot
# locally. tests/image/ checks what it installs and that the chart's pod fits it.
#
#   docker build -t ghcr.io/spillover-project/spillover:0.1.0 .

# Build the wheel and install it with its extra into a virtualenv the runtime stage copies: the
# same base image, so the venv's interpreter paths hold in both.
FROM python:3.11-slim AS builder
ARG EXTRAS=controller
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY spillover/ spillover/
COPY loadtest/ loadtest/
RUN pip wheel --no-deps --wheel-dir /wheels . \
    && python -m venv /opt/spillover \
    && /opt/spillover/bin/pip install "$(echo /wheels/spillover-*.whl)[${EXTRAS}]"

FROM python:3.11-slim
# The root filesystem is read-only in the pod: no bytecode written at run time (pip compiled it
# in the builder), and HOME is an emptyDir the chart mounts, for anything a client caches.
ENV PATH=/opt/spillover/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/home/spillover
RUN groupadd --gid 10001 spillover \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /home/spillover \
        --shell /usr/sbin/nologin spillover \
    && install -d -o 10001 -g 10001 /home/spillover /var/lib/spillover
COPY --from=builder /opt/spillover /opt/spillover
# A numeric user, so the kubelet can check runAsNonRoot against it.
USER 10001:10001
WORKDIR /home/spillover
# /metrics (controller.metrics_port); the ledger lives under /var/lib/spillover (a volume).
EXPOSE 9464
ENTRYPOINT ["spillover"]
CMD ["controller", "run", "--config", "/etc/spillover/spillover.yaml"]
