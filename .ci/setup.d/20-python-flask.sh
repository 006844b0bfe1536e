#!/usr/bin/env bash
# The legacy fixtures of the session and access tests run on Debian's Flask, Flask-Session,
# Flask-Login, Flask-WTF and redis-py under /usr/bin/python3 (not a pyenv python that may be
# first on PATH).
set -euo pipefail
PACKAGES=(python3 python3-flask python3-flask-session python3-redis python3-flask-login python3-flaskext.wtf)
missing=()
for package in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
/usr/bin/python3 -c "import flask, flask_session, redis, itsdangerous, flask_login, flask_wtf"
echo "python3-flask fixture ready: $(/usr/bin/python3 -c 'import flask_session; print("Flask-Session", flask_session.__version__)')"
