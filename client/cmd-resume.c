/*
 * taskctl resume [--class cpu|io | --queue NAME] [ID...]
 *
 * Without ids: start jobs again (all classes, one, or one named queue).
 * With ids: release those paused jobs (back to queued), continue those
 * suspended. See cmd-pause.c.
 */
#include "taskctl.h"

int
cmd_resume(struct taskctl *ctx, int argc, char **argv)
{
	return cmd_pause_resume(ctx, TASKD_OP_RESUME, argc, argv);
}
