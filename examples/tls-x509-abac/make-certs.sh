#!/usr/bin/env bash
# The certificates, Secret and ConfigMap of the X.509 + ABAC tutorial (seeds/003), made with
# `wardgate cert` and `wardgate create` instead of openssl and kubectl, plus the tutorial's
# policies, in a folder that `wardgate serve --config` runs.
#
#   examples/tls-x509-abac/make-certs.sh [OUT]      # default OUT: ./tls-x509-abac
#   WARDGATE=target/release/wardgate examples/tls-x509-abac/make-certs.sh /tmp/abac
#
# OUT gets: the Contoso server chain (root → intermediate → mqtts-endpoint, for localhost and
# 127.0.0.1), the Fabrikam device chain (root → intermediate → thermostat, heater, lightbulb),
# and OUT/config with broker-server-cert (Secret), fabrikam-ca (ConfigMap) and policies.yaml.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:-$PWD/tls-x509-abac}"
wardgate="${WARDGATE:-wardgate}"
# A relative path to the binary still works after the cd below.
case "$wardgate" in */*) wardgate="$(cd "$(dirname "$wardgate")" && pwd)/$(basename "$wardgate")" ;; esac
mkdir -p "$out/config"
cd "$out"

# Contoso: the broker's server certificate, with the intermediate in the bundle.
"$wardgate" cert ca --cn "Contoso Root CA" \
  --out-cert contoso_root_ca.crt --out-key contoso_root_ca.key
"$wardgate" cert intermediate --cn "Contoso Intermediate CA 1" \
  --ca-cert contoso_root_ca.crt --ca-key contoso_root_ca.key \
  --out-cert contoso_intermediate_ca.crt --out-key contoso_intermediate_ca.key
"$wardgate" cert server --cn mqtts-endpoint --san localhost --san 127.0.0.1 --bundle \
  --ca-cert contoso_intermediate_ca.crt --ca-key contoso_intermediate_ca.key \
  --out-cert mqtts-endpoint.crt --out-key mqtts-endpoint.key

# Fabrikam: the devices' client certificates, each with the intermediate in its bundle (the
# intermediate's subject gives lightbulb its manufacturer attribute).
"$wardgate" cert ca --cn "Fabrikam Root CA" \
  --out-cert fabrikam_root_ca.crt --out-key fabrikam_root_ca.key
"$wardgate" cert intermediate --cn "Fabrikam Intermediate CA 1" \
  --ca-cert fabrikam_root_ca.crt --ca-key fabrikam_root_ca.key \
  --out-cert fabrikam_intermediate_ca.crt --out-key fabrikam_intermediate_ca.key
for device in thermostat heater lightbulb; do
  "$wardgate" cert client --cn "$device" --bundle \
    --ca-cert fabrikam_intermediate_ca.crt --ca-key fabrikam_intermediate_ca.key \
    --out-cert "$device.crt" --out-key "$device.key"
done

# What the tutorial does with kubectl: the server Secret and the trusted client CA ConfigMap.
"$wardgate" create secret tls broker-server-cert \
  --cert mqtts-endpoint.crt --key mqtts-endpoint.key -o config
"$wardgate" create configmap fabrikam-ca \
  --from-file=client_ca.pem=fabrikam_root_ca.crt -o config
cp "$here/policies.yaml" config/policies.yaml

echo "made $out; run: wardgate serve --config $out/config"
