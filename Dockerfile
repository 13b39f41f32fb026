# custody service image. Bring the HSM vendor's PKCS#11 module in at run time (see deploy/).
FROM python:3.11-slim
RUN useradd --system --home /var/lib/custody custody && mkdir -p /var/lib/custody \
    && chown custody /var/lib/custody
WORKDIR /opt/custody
COPY pyproject.toml README.md alembic.ini ./
COPY custody custody
RUN pip install --no-cache-dir -e .
USER custody
ENV CUSTODY_HOME=/var/lib/custody
EXPOSE 8000
CMD ["custody", "serve", "--no-worker", "--host", "0.0.0.0", "--port", "8000"]
