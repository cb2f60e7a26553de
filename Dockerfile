# The Civic Ledger service: the indexer and the API from one image (docs/operations.md, "Containers and services").
# An example that could not be built where this project is developed (no container runtime there): read it, adapt it.
# Node is in the image only for `civic-ledger deploy` / `verify-deployment` (they compile the sources with solc-js);
# the indexer and the API need no Node.
FROM python:3.11-slim-bookworm

RUN apt-get update && apt-get install -y --no-install-recommends nodejs npm \
    && rm -rf /var/lib/apt/lists/*
RUN useradd --create-home --uid 10001 civic
WORKDIR /srv/civic

COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error
COPY pyproject.toml constraints.txt README.md ./
COPY ledger ledger
COPY api api
COPY contracts contracts
COPY scripts scripts
# editable: the deploy commands find contracts/ and scripts/ beside the package, as in a checkout
RUN pip install --no-cache-dir -c constraints.txt -e .

USER civic
ENV CIVIC_DATA_DIR=/var/lib/civic
VOLUME /var/lib/civic
EXPOSE 8000
# the API; the indexer is the same image with `civic-ledger sync --follow` (deploy/compose.yaml)
CMD ["python", "-m", "api", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]
