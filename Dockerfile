# The GPU image: the project and its pinned dependencies on PyTorch's CUDA image, run as a
# non-root user from the project folder, so that
#   docker run --gpus all -e MLFLOW_TRACKING_URI=… IMAGE \
#       mlflow run . -e pretrain --env-manager local -P exp=knn-replace
# trains on the GPU and logs to the tracking server. Build it with the commit it holds:
#   docker build --build-arg GIT_COMMIT="$(git rev-parse HEAD)" -t minimult-ml .
# The base's torch is the project's pin (2.13.0, here built for CUDA 12.6).
FROM pytorch/pytorch:2.13.0-cuda12.6-cudnn9-runtime

# torch.compile (on by default on CUDA) has Triton compile its launchers with a C compiler,
# which runtime images may lack. Not version-pinned (DL3008): the base image fixes the Ubuntu
# release, and a pinned package revision stops building once the archive moves on.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 lab \
    && install -d -o lab -g lab /home/lab/minimult-ml

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1 \
    GIT_PYTHON_REFRESH=quiet

# The user's own folder: a run without a tracking server writes its store (mlflow.db) here.
WORKDIR /home/lab/minimult-ml

# The pinned dependencies in a layer of their own, which source edits leave cached. pip keeps
# the base's CUDA torch (2.13.0+cu126 satisfies ==2.13.0); the check fails the build otherwise.
COPY pyproject.toml ./
RUN python -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies'], sep='\n')" \
        > /tmp/requirements.txt \
    && pip install --no-cache-dir -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt \
    && python -c "import torch; assert torch.__version__.startswith('2.13.0') and torch.version.cuda, torch.__version__"

COPY --chown=lab:lab . .
RUN pip install --no-cache-dir --no-deps .

# tracking.provenance() logs this commit: the image has no .git to ask.
ARG GIT_COMMIT=unknown
ENV MINIMULT_GIT_COMMIT=${GIT_COMMIT}

USER 10001
CMD ["minimult", "--help"]
