# Certificates and kubeconfigs for the test bed (sourced by up.sh).
# One CA signs every serving and client certificate; keys are ECDSA P-256
# except the service-account signing key (RSA, the most widely supported).

# new_ca DIR: the cluster CA, valid for a year.
new_ca() {
  local dir="$1"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$dir/ca.key" -out "$dir/ca.crt" -days 365 -subj "/CN=shoal-e2e-ca" 2>/dev/null
}

# new_cert DIR NAME SUBJECT [SANS]: NAME.crt/NAME.key signed by DIR/ca.
# SANS is an openssl subjectAltName value, e.g. "IP:127.0.0.1,DNS:localhost";
# without it the certificate is a client certificate.
new_cert() {
  local dir="$1" name="$2" subject="$3" sans="${4:-}" ext="$dir/$2.ext"
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$dir/$name.key" -out "$dir/$name.csr" -subj "$subject" 2>/dev/null
  {
    echo "basicConstraints=CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    if [ -n "$sans" ]; then
      echo "extendedKeyUsage=serverAuth,clientAuth"
      echo "subjectAltName=$sans"
    else
      echo "extendedKeyUsage=clientAuth"
    fi
  } >"$ext"
  openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" \
    -CAcreateserial -out "$dir/$name.crt" -days 365 -extfile "$ext" 2>/dev/null
  rm -f "$dir/$name.csr" "$ext"
}

# write_kubeconfig FILE SERVER CA CERT KEY: a kubeconfig with embedded credentials.
write_kubeconfig() {
  local file="$1" server="$2" ca="$3" cert="$4" key="$5"
  cat >"$file" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
- name: shoal-e2e
  cluster:
    server: $server
    certificate-authority-data: $(base64 -w0 <"$ca")
users:
- name: user
  user:
    client-certificate-data: $(base64 -w0 <"$cert")
    client-key-data: $(base64 -w0 <"$key")
contexts:
- name: shoal-e2e
  context:
    cluster: shoal-e2e
    user: user
current-context: shoal-e2e
KUBECONFIG
  chmod 600 "$file"
}

# make_pki DIR SERVER: every certificate, key and kubeconfig the daemons use.
make_pki() {
  local dir="$1" server="$2" node="$NODE_NAME"
  mkdir -p "$dir"
  new_ca "$dir"
  new_cert "$dir" apiserver "/CN=kube-apiserver" \
    "IP:127.0.0.1,IP:$NODE_IP,IP:$SERVICE_IP,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  new_cert "$dir" etcd "/CN=etcd" "IP:127.0.0.1,DNS:localhost"
  new_cert "$dir" etcd-client "/CN=kube-apiserver-etcd-client"
  new_cert "$dir" apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client"
  new_cert "$dir" kubelet "/CN=$node" "IP:$NODE_IP,IP:127.0.0.1,DNS:$node"
  openssl genrsa -out "$dir/sa.key" 2048 2>/dev/null
  openssl rsa -in "$dir/sa.key" -pubout -out "$dir/sa.pub" 2>/dev/null

  local who subject
  for who in admin kube-controller-manager kube-scheduler kubelet-client kube-proxy coredns; do
    case "$who" in
      admin) subject="/O=system:masters/CN=shoal-e2e-admin" ;;
      kube-controller-manager) subject="/CN=system:kube-controller-manager" ;;
      kube-scheduler) subject="/CN=system:kube-scheduler" ;;
      kubelet-client) subject="/O=system:nodes/CN=system:node:$node" ;;
      kube-proxy) subject="/CN=system:kube-proxy" ;;
      coredns) subject="/CN=system:shoal-e2e:coredns" ;;
    esac
    new_cert "$dir" "$who" "$subject"
    write_kubeconfig "$dir/$who.kubeconfig" "$server" "$dir/ca.crt" "$dir/$who.crt" "$dir/$who.key"
  done
  chmod 600 "$dir"/*.key
}
