/*
 * A taskd built without cluster support (meson -Dcluster=disabled, or no
 * libnats): the configuration refuses a cluster group (config-load.c), so
 * td->cluster is always NULL and nothing here is called with a cluster.
 * These keep the callers free of #ifdefs.
 */
#include <stdlib.h>

#include "cluster.h"
#include "log.h"
#include "xmalloc.h"

struct cluster *
cluster_new(struct taskd *td)
{
	fatalx("cluster: this taskd was built without cluster support (libnats)");
}

void
cluster_free(struct cluster *cl)
{
}

void
cluster_submit(struct cluster *cl, struct client *c, json_t *id, struct job_spec *specs,
	       size_t n, bool batch, bool wait, bool local)
{
	fatalx("cluster: not built in");
}

void
cluster_cancel(struct cluster *cl, struct client *c, json_t *id, struct job *j)
{
	fatalx("cluster: not built in");
}

bool
cluster_output_elsewhere(struct cluster *cl, const struct job *j)
{
	return false;
}

void
cluster_logs(struct cluster *cl, struct client *c, json_t *id, const struct job *j, bool errs,
	     json_int_t off, json_int_t max)
{
	fatalx("cluster: not built in");
}

void
cluster_forget(struct cluster *cl, const struct job *j)
{
}

json_t *
cluster_status(struct cluster *cl)
{
	return json_null();
}

const char *
cluster_state_name(const struct cluster *cl)
{
	return "not built in";
}

void
cluster_client_closed(struct cluster *cl, struct client *c)
{
}

void
cluster_stop(struct cluster *cl, bool drain)
{
}

bool
cluster_close(struct cluster *cl)
{
	return true;
}
