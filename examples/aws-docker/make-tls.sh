#!/bin/sh
# TLS material for a Docker engine reached at PUBLIC_IP:2376, and user data that sets it up.
#
#   ./make-tls.sh PUBLIC_IP [DIR]        (DIR defaults to ./tls)
#
# Writes, in DIR (mode 0600, the directory 0700):
#   ca.pem, ca-key.pem            a private CA (keep ca-key.pem to yourself)
#   server-cert.pem, server-key.pem   the engine's certificate, for IP:PUBLIC_IP
#   cert.pem, key.pem             your client certificate (docker_client_cert / docker_client_key)
#   user-data.yaml                an inputs file with `user_data`: installs Docker (apt or dnf)
#                                 and makes it listen on tcp://0.0.0.0:2376 with --tlsverify
#
# The server key travels in the user data: anyone who may read the instance's user data
# (DescribeInstanceAttribute, or a process on the instance via the metadata service) can
# read it, and the orchestrator's state file keeps it too. Fine for a demo; for more,
# fetch it at boot from a secret store instead.
set -eu

if [ $# -lt 1 ]; then
    echo "usage: $0 PUBLIC_IP [DIR]" >&2
    exit 2
fi
ip=$1
dir=${2:-tls}
days=${DAYS:-90}

umask 077
mkdir -p "$dir"
cd "$dir"

openssl genrsa -out ca-key.pem 3072 2>/dev/null
openssl req -new -x509 -sha256 -days "$days" -key ca-key.pem -subj "/CN=orchestrator docker CA" \
    -out ca.pem

openssl genrsa -out server-key.pem 2048 2>/dev/null
openssl req -new -sha256 -key server-key.pem -subj "/CN=$ip" -out server.csr
printf 'subjectAltName = IP:%s\nextendedKeyUsage = serverAuth\n' "$ip" > server.ext
openssl x509 -req -sha256 -days "$days" -in server.csr -CA ca.pem -CAkey ca-key.pem \
    -CAcreateserial -extfile server.ext -out server-cert.pem 2>/dev/null

openssl genrsa -out key.pem 2048 2>/dev/null
openssl req -new -sha256 -key key.pem -subj "/CN=orchestrator client" -out client.csr
printf 'extendedKeyUsage = clientAuth\n' > client.ext
openssl x509 -req -sha256 -days "$days" -in client.csr -CA ca.pem -CAkey ca-key.pem \
    -CAcreateserial -extfile client.ext -out cert.pem 2>/dev/null

rm -f server.csr server.ext client.csr client.ext ca.srl

# The instance's first boot: Docker from the distribution, TLS on 2376 (2375 stays closed).
script=$(cat <<EOF
#!/bin/sh
set -eu
if command -v apt-get >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q docker.io
else
    dnf install -y docker
fi
install -d -m 0700 /etc/docker/tls
cat > /etc/docker/tls/ca.pem <<'PEM'
$(cat ca.pem)
PEM
cat > /etc/docker/tls/server-cert.pem <<'PEM'
$(cat server-cert.pem)
PEM
cat > /etc/docker/tls/server-key.pem <<'PEM'
$(cat server-key.pem)
PEM
chmod 0600 /etc/docker/tls/*.pem
cat > /etc/docker/daemon.json <<'JSON'
{
  "hosts": ["unix:///var/run/docker.sock", "tcp://0.0.0.0:2376"],
  "tlsverify": true,
  "tlscacert": "/etc/docker/tls/ca.pem",
  "tlscert": "/etc/docker/tls/server-cert.pem",
  "tlskey": "/etc/docker/tls/server-key.pem"
}
JSON
# "hosts" in daemon.json conflicts with the unit's "-H fd://"
mkdir -p /etc/systemd/system/docker.service.d
cat > /etc/systemd/system/docker.service.d/tls.conf <<'UNIT'
[Service]
ExecStart=
ExecStart=/usr/bin/dockerd --containerd=/run/containerd/containerd.sock
UNIT
systemctl daemon-reload
systemctl enable docker
systemctl restart docker
EOF
)
{
    echo "# Written by make-tls.sh for $ip: pass it with -i next to inputs-real-aws.yaml"
    echo "user_data: |"
    printf '%s\n' "$script" | sed 's/^/  /'
} > user-data.yaml

echo "wrote $(pwd)/{ca,server-cert,server-key,cert,key}.pem, ca-key.pem and user-data.yaml"
