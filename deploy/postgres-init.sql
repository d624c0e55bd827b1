-- Roles for Parley (compose.yaml runs this once, as the image's superuser).
-- The owner runs migrations; the app role is what the API and workers connect as: row-level
-- security applies to it because it is neither SUPERUSER nor BYPASSRLS.
\set owner_password `echo "$PARLEY_OWNER_PASSWORD"`
\set app_password `echo "$PARLEY_APP_PASSWORD"`
CREATE ROLE parley_owner LOGIN PASSWORD :'owner_password';
CREATE ROLE parley_app LOGIN PASSWORD :'app_password' NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
CREATE DATABASE parley OWNER parley_owner;
\connect parley
CREATE EXTENSION IF NOT EXISTS vector;
