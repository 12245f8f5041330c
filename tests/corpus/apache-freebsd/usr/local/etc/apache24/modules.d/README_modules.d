The files named NNN_name.conf here are read by httpd.conf: third-party module
ports put their LoadModule lines in them.
