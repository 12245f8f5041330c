server {

	root /var/www/blog.example.com/html;
	index index.html index.htm index.nginx-debian.html;

	server_name blog.example.com www.blog.example.com;

	location / {
		try_files $uri $uri/ =404;
	}

    listen [::]:443 ssl ipv6only=on; # managed by Certbot
    listen 443 ssl; # managed by Certbot
    ssl_certificate {root}/etc/letsencrypt/live/blog.example.com/fullchain.pem; # managed by Certbot
    ssl_certificate_key {root}/etc/letsencrypt/live/blog.example.com/privkey.pem; # managed by Certbot
    include {root}/etc/letsencrypt/options-ssl-nginx.conf; # managed by Certbot
    ssl_dhparam {root}/etc/letsencrypt/ssl-dhparams.pem; # managed by Certbot

}
server {
    if ($host = www.blog.example.com) {
        return 301 https://$host$request_uri;
    } # managed by Certbot


    if ($host = blog.example.com) {
        return 301 https://$host$request_uri;
    } # managed by Certbot


	listen 80;
	listen [::]:80;

	server_name blog.example.com www.blog.example.com;
    return 404; # managed by Certbot




}
