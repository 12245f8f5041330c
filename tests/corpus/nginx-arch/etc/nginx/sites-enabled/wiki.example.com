server {
    listen 80;
    listen [::]:80;
    server_name wiki.example.com;
    location /.well-known/acme-challenge/ { root /var/lib/letsencrypt/; }
    location / { return 301 https://$server_name$request_uri; }
}

server {
    listen 443 ssl http2;
    listen [::]:443 ssl http2;
    server_name wiki.example.com;

    ssl_certificate {root}/etc/letsencrypt/live/wiki.example.com/fullchain.pem;
    ssl_certificate_key {root}/etc/letsencrypt/live/wiki.example.com/privkey.pem;
    ssl_trusted_certificate {root}/etc/letsencrypt/live/wiki.example.com/chain.pem;
    ssl_stapling on;
    ssl_stapling_verify on;
    resolver 127.0.0.1;

    root /srv/http/wiki;
}
