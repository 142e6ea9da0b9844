# The tracking server of compose.yaml: MLflow (the project's pin) with its basic-auth app, the
# PostgreSQL driver, and boto3 for the S3 artifact store.
FROM python:3.11.14-slim-bookworm

RUN pip install --no-cache-dir mlflow==3.17.2 flask-wtf==1.3.0 psycopg2-binary==2.9.13 \
        boto3==1.44.5 \
    && useradd --create-home --uid 10001 mlflow

COPY basic_auth.ini /etc/mlflow/basic_auth.ini
ENV MLFLOW_AUTH_CONFIG_PATH=/etc/mlflow/basic_auth.ini

USER 10001
EXPOSE 5000
CMD ["mlflow", "server", "--help"]
