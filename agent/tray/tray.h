/*
 * tray.h: the pieces of vigil-tray (GTK).
 *
 * tray.c owns the connection to vigild, the icon and the menu;
 * tray_windows.c the progress, history and log windows; tray_editor.c the
 * jobs editor.  Every request goes through tray_call(), so the tray stays
 * a thin client of the socket: it never opens the database and never runs
 * a job itself.
 *
 * Ownership: the struct tray lives for the whole program (main's stack);
 * the windows are created on first use and destroyed with their window.
 */
#ifndef VIGIL_TRAY_H
#define VIGIL_TRAY_H

#include <gtk/gtk.h>
#include <jansson.h>

#include "agent/client.h"
#include "agent/tray/tray_model.h"

enum tray_backend { TRAY_BACKEND_AUTO, TRAY_BACKEND_SNI, TRAY_BACKEND_XEMBED };

struct tray_progress_win;
struct tray_history_win;
struct tray_editor;

struct tray {
	GtkApplication		*app;
	const char		*socket_path;	/* --socket, or NULL */
	const char		*icon_dir;	/* --icon-dir, or NULL */
	enum tray_backend	 backend;
	bool			 open_editor;	/* --edit */
	struct tray_model	*model;
	struct vg_client	*client;
	guint			 fd_watch, retry_src, refresh_src;
	void			*indicator;	/* AppIndicator *, SNI */
	GtkStatusIcon		*status_icon;	/* XEmbed */
	GtkWidget		*menu;
	enum tray_state		 shown;
	bool			 shown_once;
	struct tray_progress_win *progress;
	struct tray_history_win	*history;
	struct tray_editor	*editor;
};

/*
 * A request to vigild.  0: ok, *result set (caller decrefs); 1: the
 * service said no, *errobj set when errobj is not NULL (caller decrefs)
 * and msg holds its message; -1: not connected or the connection broke
 * (the tray goes on retrying), msg says so.  params are stolen.
 */
int	tray_call(struct tray *t, const char *method, json_t *params,
	    json_t **result, json_t **errobj, char *msg, size_t msglen);
/* Ask for a new `status` and redraw everything. */
void	tray_refresh(struct tray *t);
/* A modal-less message box. */
void	tray_message(struct tray *t, GtkWindow *parent, GtkMessageType type,
	    const char *title, const char *text);

/* tray_windows.c */
void	tray_progress_show(struct tray *t);
void	tray_progress_update(struct tray *t);
void	tray_history_show(struct tray *t);
void	tray_history_reload(struct tray *t);
void	tray_log_show(struct tray *t, int64_t run);

/* tray_editor.c */
void	tray_editor_show(struct tray *t);

#endif
