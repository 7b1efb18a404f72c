"""deploy/proxy/: nginx and Caddy accept the example configurations as written, and both
forward to the address newsletter-web.service serves."""

from __future__ import annotations

import datetime
import re
import shutil
import subprocess
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.deploy_files import DEPLOY, UNITS, exec_start
from tests.required_tools import require_tool

NGINX = DEPLOY / "proxy" / "nginx.conf"
CADDYFILE = DEPLOY / "proxy" / "Caddyfile"
LETSENCRYPT = "/etc/letsencrypt/live/newsletter.example.com"
# What nginx needs around a site file: an events block, an http block, and paths of its own.
NGINX_MAIN = """\
pid {folder}/nginx.pid;
error_log {folder}/error.log;
events {{}}
http {{
    client_body_temp_path {folder}/body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    include {folder}/newsletter.conf;
}}
"""


def tool(name: str, package: str) -> str:
    path = shutil.which(name) or shutil.which(f"/usr/sbin/{name}")
    require_tool(
        None if path else f"{name} is not installed (Debian package {package})",
        variable="NEWSLETTER_REQUIRE_PROXIES",
    )
    assert path is not None
    return path


def served_address() -> str:
    [web] = [unit for unit in UNITS.iterdir() if unit.name == "newsletter-web.service"]
    args = exec_start(web)
    return f"{args[args.index('--host') + 1]}:{args[args.index('--port') + 1]}"


def write_certificate(folder: Path) -> tuple[Path, Path]:
    """A throwaway self-signed certificate where nginx expects Let's Encrypt's."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "newsletter.example.com")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    chain, private = folder / "fullchain.pem", folder / "privkey.pem"
    chain.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return chain, private


def test_nginx_accepts_the_site(tmp_path: Path) -> None:
    nginx = tool("nginx", "nginx")
    chain, private = write_certificate(tmp_path)
    site = NGINX.read_text(encoding="utf-8")
    site = site.replace(f"{LETSENCRYPT}/fullchain.pem", str(chain))
    site = site.replace(f"{LETSENCRYPT}/privkey.pem", str(private))
    (tmp_path / "newsletter.conf").write_text(site, encoding="utf-8")
    (tmp_path / "nginx.conf").write_text(NGINX_MAIN.format(folder=tmp_path), encoding="utf-8")

    tested = subprocess.run(
        [nginx, "-t", "-q", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip

    assert tested.returncode == 0, tested.stderr
    assert tested.stderr == ""


def test_caddy_accepts_the_caddyfile(tmp_path: Path) -> None:
    caddy = tool("caddy", "caddy")
    home = {"HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path)}

    formatted = subprocess.run(
        [caddy, "fmt", str(CADDYFILE)], capture_output=True, text=True, timeout=60, check=True,
        env=home,
    )  # fmt: skip
    validated = subprocess.run(
        [caddy, "validate", "--adapter", "caddyfile", "--config", str(CADDYFILE)],
        capture_output=True, text=True, timeout=60, check=False, env=home,
    )  # fmt: skip

    assert formatted.stdout == CADDYFILE.read_text(encoding="utf-8"), "run caddy fmt --overwrite"
    assert validated.returncode == 0, validated.stderr


def test_both_forward_to_the_web_app() -> None:
    address = served_address()

    assert re.search(rf"^\s*server {re.escape(address)};", NGINX.read_text(), re.M)
    assert re.search(rf"^\s*reverse_proxy {re.escape(address)}$", CADDYFILE.read_text(), re.M)
