/*
 * The dashboard's files (daemon/web/), built into the binary: meson runs
 * daemon/web/embed.py over them into web-assets.c. Nothing is read from
 * the disk at run time and nothing is fetched from elsewhere.
 */
#ifndef TASKD_WEB_H
#define TASKD_WEB_H

#include <stdbool.h>
#include <stddef.h>

struct web_asset {
	const char *path;          /* "/index.html", "/app.js", ... */
	const char *type;          /* Content-Type */
	const unsigned char *data;
	size_t len;
	const char *etag;          /* quoted, from a hash of the content */
};

extern const struct web_asset web_assets[];
extern const size_t web_nassets;

/* The asset at path, or NULL. */
const struct web_asset *web_asset_find(const char *path);
bool web_asset_exists(const char *path);

#endif
