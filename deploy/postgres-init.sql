-- The auth app's users and permissions live in a database of their own, beside the runs'.
CREATE DATABASE mlflow_auth;
