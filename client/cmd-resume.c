/*
 * taskctl resume [--class cpu|io] [ID...]
 *
 * Without ids: start jobs again (all classes, or one). With ids: release
 * those paused jobs (back to queued). See cmd-pause.c.
 */
#include "taskctl.h"

int
cmd_resume(struct taskctl *ctx, int argc, char **argv)
{
	return cmd_pause_resume(ctx, TASKD_OP_RESUME, argc, argv);
}
