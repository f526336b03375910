"""Sets up a Keystone (OpenStack's Identity service) in DIR for xitc's tests
and benchmarks, to be served by gunicorn on 127.0.0.1:PORT:

    python keystone-setup.py DIR PORT ADMIN_PASSWORD [TOKEN_EXPIRATION_SECONDS]

writes DIR/keystone.conf (sqlite, fernet tokens, key folders in DIR, cheap
password hashes, an in-memory cache) and DIR/gunicorn.conf.py, then runs
keystone-manage's db_sync, fernet_setup, credential_setup and bootstrap in
this one process (four processes cost ~4 s of Python start-up each). Serve it
with `OS_KEYSTONE_CONFIG_DIR=DIR gunicorn` run from DIR with no arguments:
Keystone parses the process's argv itself, and `gunicorn ... app` makes every
worker fail. Used by test-support's Keystone and scripts/lib/local-servers.sh.
"""
import os
import sys

from keystone.cmd import cli

directory, port, password = sys.argv[1], sys.argv[2], sys.argv[3]
expiration = f"expiration = {sys.argv[4]}\n" if len(sys.argv) > 4 else ""
conf = os.path.join(directory, "keystone.conf")
with open(conf, "w") as out:
    out.write(
        f"[database]\nconnection = sqlite:///{directory}/keystone.db\n"
        f"[token]\nprovider = fernet\n{expiration}"
        f"[fernet_tokens]\nkey_repository = {directory}/fernet-keys\n"
        f"[fernet_receipts]\nkey_repository = {directory}/fernet-receipts\n"
        f"[credential]\nkey_repository = {directory}/credential-keys\n"
        # Before bootstrap, or the admin's hash is the slow kind.
        "[identity]\npassword_hash_rounds = 4\n"
        "[cache]\nenabled = true\nbackend = oslo_cache.dict\n")
with open(os.path.join(directory, "gunicorn.conf.py"), "w") as out:
    out.write(f'wsgi_app = "keystone.wsgi.api:application"\nbind = "127.0.0.1:{port}"\n'
              # One line per request in DIR/access.log: the benchmarks count them.
              'workers = 1\nthreads = 4\naccesslog = "access.log"\n')
url = f"http://127.0.0.1:{port}/v3"
steps = (
    ["db_sync"],
    ["fernet_setup", "--keystone-user", "root", "--keystone-group", "root"],
    ["credential_setup", "--keystone-user", "root", "--keystone-group", "root"],
    ["bootstrap", "--bootstrap-password", password, "--bootstrap-admin-url", url,
     "--bootstrap-internal-url", url, "--bootstrap-public-url", url,
     "--bootstrap-region-id", "RegionOne"],
)
for number, args in enumerate(steps):
    if number:
        # keystone-manage's main registers its command option once per process.
        cli.CONF.reset()
        cli.CONF.unregister_opt(cli.command_opt)
    cli.main(argv=["keystone-manage", "--config-file", conf] + args)
