/*
 * tray_editor.c: the jobs editor of vigil-tray.
 *
 * It edits the same INI text as `vigil jobs edit`: the caller's jobs as
 * `jobs.export` gives them.  Saving validates the whole text locally first
 * (config_parse and config_check, as `vigil jobs validate`); a text with
 * errors is never sent: each error's line is marked and the messages are
 * listed under the text.  Only a valid text goes to the service, as
 * `jobs.import` with replace=true, which applies it in one transaction (or
 * refuses it whole, with its own diagnostics, shown the same way).
 *
 * "Open in my editor" writes the text to a private temp file and hands it
 * to $VISUAL (waiting for it to exit) or, without $VISUAL, to xdg-open
 * (watching the file for saves).  Each time the text comes back it is
 * loaded here, validated and, when valid, applied.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/log.h"
#include "agent/tray/tray.h"

#define EDITOR_TITLE	"Edit jobs"
#define EDITOR_FILENAME	"jobs"

struct tray_editor {
	struct tray	*t;
	GtkWidget	*win, *view, *errors, *status, *save, *external;
	GtkTextBuffer	*buf;
	GtkTextTag	*err_tag, *note_tag;
	char		*ext_path;	/* the temp file handed out, or NULL */
	GFileMonitor	*monitor;
	guint		 child_watch, reload_src;
};

static void	tray_editor_apply(struct tray_editor *e);

static void
tray_editor_set_status(struct tray_editor *e, const char *title_tail,
    const char *status)
{
	char title[512];

	if (title_tail != NULL && *title_tail != '\0')
		snprintf(title, sizeof title, "%s: %s", EDITOR_TITLE,
		    title_tail);
	else
		snprintf(title, sizeof title, "%s", EDITOR_TITLE);
	gtk_window_set_title(GTK_WINDOW(e->win), title);
	gtk_label_set_text(GTK_LABEL(e->status), status);
}

static void
tray_editor_clear_diags(struct tray_editor *e)
{
	GtkTextIter s, end;
	GList *kids, *l;

	gtk_text_buffer_get_bounds(e->buf, &s, &end);
	gtk_text_buffer_remove_tag(e->buf, e->err_tag, &s, &end);
	gtk_text_buffer_remove_tag(e->buf, e->note_tag, &s, &end);
	kids = gtk_container_get_children(GTK_CONTAINER(e->errors));
	for (l = kids; l != NULL; l = l->next)
		gtk_widget_destroy(GTK_WIDGET(l->data));
	g_list_free(kids);
	gtk_widget_hide(e->errors);
}

static void
tray_editor_goto_line(struct tray_editor *e, unsigned line)
{
	GtkTextIter it;

	if (line == 0)
		return;
	gtk_text_buffer_get_iter_at_line(e->buf, &it, (gint)line - 1);
	gtk_text_buffer_place_cursor(e->buf, &it);
	gtk_text_view_scroll_to_iter(GTK_TEXT_VIEW(e->view), &it, 0.1, FALSE,
	    0, 0);
	gtk_widget_grab_focus(e->view);
}

static void
tray_editor_row_cb(GtkListBox *box, GtkListBoxRow *row, gpointer arg)
{
	(void)box;
	tray_editor_goto_line(arg, GPOINTER_TO_UINT(g_object_get_data(
	    G_OBJECT(row), "vigil-line")));
}

/*
 * Mark each diagnostic's line and list the messages.  Returns the lines of
 * the errors as "line 4" or "lines 4, 9" in buf.
 */
static void
tray_editor_show_diags(struct tray_editor *e, const struct vg_diags *d,
    char *lines, size_t len)
{
	GtkWidget *label, *row;
	GtkTextIter s, end;
	char *text;
	gchar *valid;
	size_t i, k, nlines = 0, off;
	unsigned first = 0, elines[8];

	tray_editor_clear_diags(e);
	lines[0] = '\0';
	for (i = 0; i < d->n; i++) {
		const struct vg_diag *g = &d->v[i];

		if (g->line > 0 && (gint)g->line <=
		    gtk_text_buffer_get_line_count(e->buf)) {
			gtk_text_buffer_get_iter_at_line(e->buf, &s,
			    (gint)g->line - 1);
			end = s;
			if (!gtk_text_iter_ends_line(&end))
				gtk_text_iter_forward_to_line_end(&end);
			gtk_text_buffer_apply_tag(e->buf, g->level ==
			    VG_DIAG_ERROR ? e->err_tag : e->note_tag, &s, &end);
		}
		if (g->level == VG_DIAG_ERROR && g->line > 0) {
			for (k = 0; k < nlines && elines[k] != g->line; k++)
				;
			if (k == nlines && nlines < sizeof elines /
			    sizeof elines[0])
				elines[nlines++] = g->line;
			if (first == 0)
				first = g->line;
		}
		if ((text = tray_diag_text(g)) == NULL)
			continue;
		valid = g_utf8_make_valid(text, -1);
		free(text);
		label = gtk_label_new(valid);
		g_free(valid);
		gtk_label_set_xalign(GTK_LABEL(label), 0);
		gtk_label_set_line_wrap(GTK_LABEL(label), TRUE);
		gtk_label_set_selectable(GTK_LABEL(label), FALSE);
		gtk_style_context_add_class(gtk_widget_get_style_context(label),
		    g->level == VG_DIAG_ERROR ? "error" : "warning");
		row = gtk_list_box_row_new();
		gtk_container_add(GTK_CONTAINER(row), label);
		g_object_set_data(G_OBJECT(row), "vigil-line",
		    GUINT_TO_POINTER(g->line));
		gtk_container_add(GTK_CONTAINER(e->errors), row);
	}
	for (k = 0; k < nlines; k++) {
		off = strlen(lines);
		snprintf(lines + off, len - off, "%s%u", k == 0 ? (nlines == 1 ?
		    "line " : "lines ") : ", ", elines[k]);
	}
	if (d->n > 0)
		gtk_widget_show_all(e->errors);
	if (first > 0)
		tray_editor_goto_line(e, first);
}

static char *
tray_editor_text(struct tray_editor *e)
{
	GtkTextIter s, end;

	gtk_text_buffer_get_bounds(e->buf, &s, &end);
	return gtk_text_buffer_get_text(e->buf, &s, &end, TRUE);
}

/* Validate, then (only when valid) replace the job set through vigild. */
static void
tray_editor_apply(struct tray_editor *e)
{
	struct vg_diags diags = { 0 };
	json_t *params, *res = NULL, *eo = NULL;
	char *text, lines[128], tail[256], status[1200], msg[1024];
	size_t nerr;
	int rc;

	text = tray_editor_text(e);
	nerr = tray_validate_jobs(EDITOR_FILENAME, text, strlen(text),
	    getuid(), &diags);
	tray_editor_show_diags(e, &diags, lines, sizeof lines);
	if (nerr > 0) {
		snprintf(tail, sizeof tail, "not saved, %zu error%s%s%s%s",
		    nerr, nerr == 1 ? "" : "s", lines[0] != '\0' ? " (" : "",
		    lines, lines[0] != '\0' ? ")" : "");
		snprintf(status, sizeof status, "Not saved: %zu error%s, "
		    "marked in red (%s). Your jobs are unchanged.", nerr,
		    nerr == 1 ? "" : "s", lines[0] != '\0' ? lines :
		    "see the list");
		tray_editor_set_status(e, tail, status);
		log_info("editor: refused, %s", tail);
		goto out;
	}
	params = json_object();
	json_object_set_new(params, "text", json_string(text));
	json_object_set_new(params, "filename", json_string(EDITOR_FILENAME));
	json_object_set_new(params, "replace", json_true());
	rc = tray_call(e->t, "jobs.import", params, &res, &eo, msg, sizeof msg);
	if (rc == 0) {
		snprintf(status, sizeof status, "Saved: %lld job%s.",
		    (long long)json_integer_value(json_object_get(res, "jobs")),
		    json_integer_value(json_object_get(res, "jobs")) == 1 ?
		    "" : "s");
		tray_editor_set_status(e, "saved", status);
		gtk_text_buffer_set_modified(e->buf, FALSE);
		log_info("editor: saved");
		/* Notes the service added (nothing blocking). */
		diags_free(&diags);
		memset(&diags, 0, sizeof diags);
		(void)tray_diags_from_json(json_object_get(res,
		    "diagnostics"), &diags);
		tray_editor_show_diags(e, &diags, lines, sizeof lines);
		tray_refresh(e->t);
		goto out;
	}
	if (rc == 1) {
		diags_free(&diags);
		memset(&diags, 0, sizeof diags);
		(void)tray_diags_from_json(json_object_get(json_object_get(eo,
		    "detail"), "diagnostics"), &diags);
		tray_editor_show_diags(e, &diags, lines, sizeof lines);
		snprintf(tail, sizeof tail, "not saved%s%s%s", lines[0] !=
		    '\0' ? " (" : "", lines, lines[0] != '\0' ? ")" : "");
		snprintf(status, sizeof status, "Not saved: the service "
		    "refused the file: %s. Your jobs are unchanged.", msg);
		tray_editor_set_status(e, tail, status);
		goto out;
	}
	snprintf(status, sizeof status, "Not saved: %s. Your text stays "
	    "here; save again when the service is back.", msg);
	tray_editor_set_status(e, "not saved (no service)", status);
out:
	json_decref(res);
	json_decref(eo);
	diags_free(&diags);
	g_free(text);
}

static void
tray_editor_save_cb(GtkButton *b, gpointer arg)
{
	(void)b;
	tray_editor_apply(arg);
}

/* ---- the external editor ---- */

static void
tray_editor_load_external(struct tray_editor *e)
{
	gchar *text = NULL, *valid;
	gsize len = 0;
	GError *gerr = NULL;

	if (e->ext_path == NULL)
		return;
	if (!g_file_get_contents(e->ext_path, &text, &len, &gerr)) {
		tray_editor_set_status(e, "not saved", gerr->message);
		g_error_free(gerr);
		return;
	}
	if (memchr(text, '\0', len) != NULL || !g_utf8_validate(text,
	    (gssize)len, NULL)) {
		valid = g_utf8_make_valid(text, (gssize)len);
		g_free(text);
		text = valid;
	}
	gtk_text_buffer_set_text(e->buf, text, -1);
	gtk_text_buffer_set_modified(e->buf, TRUE);
	g_free(text);
	tray_editor_apply(e);
}

static void
tray_editor_drop_external(struct tray_editor *e)
{
	if (e->monitor != NULL) {
		g_file_monitor_cancel(e->monitor);
		g_object_unref(e->monitor);
		e->monitor = NULL;
	}
	if (e->reload_src != 0)
		g_source_remove(e->reload_src);
	e->reload_src = 0;
	if (e->ext_path != NULL) {
		(void)unlink(e->ext_path);
		g_free(e->ext_path);
		e->ext_path = NULL;
	}
	gtk_text_view_set_editable(GTK_TEXT_VIEW(e->view), TRUE);
	gtk_widget_set_sensitive(e->external, TRUE);
	gtk_widget_set_sensitive(e->save, TRUE);
}

static void
tray_editor_child_cb(GPid pid, gint status, gpointer arg)
{
	struct tray_editor *e = arg;
	char msg[256];

	g_spawn_close_pid(pid);
	e->child_watch = 0;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		snprintf(msg, sizeof msg, "Your editor failed (%s %d); the "
		    "text here is unchanged.", WIFEXITED(status) ?
		    "exit status" : "signal", WIFEXITED(status) ?
		    WEXITSTATUS(status) : WTERMSIG(status));
		tray_editor_set_status(e, "not saved", msg);
	} else
		tray_editor_load_external(e);
	tray_editor_drop_external(e);
}

static gboolean
tray_editor_reload_cb(gpointer arg)
{
	struct tray_editor *e = arg;

	e->reload_src = 0;
	tray_editor_load_external(e);
	return G_SOURCE_REMOVE;
}

static void
tray_editor_changed_cb(GFileMonitor *mon, GFile *f, GFile *other,
    GFileMonitorEvent ev, gpointer arg)
{
	struct tray_editor *e = arg;

	(void)mon;
	(void)f;
	(void)other;
	if (ev != G_FILE_MONITOR_EVENT_CHANGES_DONE_HINT &&
	    ev != G_FILE_MONITOR_EVENT_CREATED)
		return;
	if (e->reload_src != 0)
		g_source_remove(e->reload_src);
	e->reload_src = g_timeout_add(300, tray_editor_reload_cb, e);
}

static void
tray_editor_external_cb(GtkButton *b, gpointer arg)
{
	struct tray_editor *e = arg;
	const char *visual = g_getenv("VISUAL");
	GError *gerr = NULL;
	GFile *f;
	gchar *path, *text, *cmd;
	gchar *argv[6];
	GPid pid;
	int fd;
	ssize_t n;
	size_t len, off;

	(void)b;
	tray_editor_drop_external(e);
	path = g_build_filename(g_get_user_runtime_dir(),
	    "vigil-jobs-XXXXXX.ini", NULL);
	if ((fd = g_mkstemp_full(path, O_RDWR | O_CLOEXEC, 0600)) == -1) {
		tray_editor_set_status(e, NULL, "Cannot create a temp file "
		    "for your editor.");
		g_free(path);
		return;
	}
	e->ext_path = path;
	text = tray_editor_text(e);
	len = strlen(text);
	for (off = 0; off < len; off += (size_t)n)
		if ((n = write(fd, text + off, len - off)) <= 0)
			break;
	g_free(text);
	if (off < len || fsync(fd) == -1) {
		close(fd);
		tray_editor_set_status(e, NULL, "Cannot write the temp file "
		    "for your editor.");
		tray_editor_drop_external(e);
		return;
	}
	close(fd);
	if (visual != NULL && *visual != '\0') {
		/* As `vigil jobs edit`: let sh split $VISUAL ("code -w"),
		 * with the file as its own argument. */
		cmd = g_strdup_printf("%s \"$1\"", visual);
		argv[0] = "/bin/sh";
		argv[1] = "-c";
		argv[2] = cmd;
		argv[3] = "sh";
		argv[4] = e->ext_path;
		argv[5] = NULL;
		if (!g_spawn_async(NULL, argv, NULL,
		    G_SPAWN_DO_NOT_REAP_CHILD, NULL, NULL, &pid, &gerr)) {
			tray_editor_set_status(e, NULL, gerr->message);
			g_error_free(gerr);
			g_free(cmd);
			tray_editor_drop_external(e);
			return;
		}
		g_free(cmd);
		e->child_watch = g_child_watch_add(pid, tray_editor_child_cb,
		    e);
		gtk_text_view_set_editable(GTK_TEXT_VIEW(e->view), FALSE);
		gtk_widget_set_sensitive(e->save, FALSE);
		gtk_widget_set_sensitive(e->external, FALSE);
		tray_editor_set_status(e, "in your editor", "Editing in your "
		    "editor ($VISUAL): the text is checked and applied when "
		    "the editor exits.");
		return;
	}
	f = g_file_new_for_path(e->ext_path);
	e->monitor = g_file_monitor_file(f, G_FILE_MONITOR_NONE, NULL, NULL);
	g_object_unref(f);
	if (e->monitor != NULL)
		g_signal_connect(e->monitor, "changed",
		    G_CALLBACK(tray_editor_changed_cb), e);
	argv[0] = "xdg-open";
	argv[1] = e->ext_path;
	argv[2] = NULL;
	if (!g_spawn_async(NULL, argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL,
	    NULL, &gerr)) {
		tray_editor_set_status(e, NULL, gerr->message);
		g_error_free(gerr);
		tray_editor_drop_external(e);
		return;
	}
	tray_editor_set_status(e, "in your editor", "Opened in your default "
	    "editor: each time you save there, the text comes back here, is "
	    "checked, and is applied when valid.");
}

/* ---- the window ---- */

static gboolean
tray_editor_delete_cb(GtkWidget *w, GdkEvent *ev, gpointer arg)
{
	struct tray_editor *e = arg;
	GtkWidget *d;
	gint r;

	(void)w;
	(void)ev;
	if (!gtk_text_buffer_get_modified(e->buf))
		return FALSE;
	d = gtk_message_dialog_new(GTK_WINDOW(e->win), GTK_DIALOG_MODAL,
	    GTK_MESSAGE_QUESTION, GTK_BUTTONS_NONE,
	    "Close without saving?");
	gtk_message_dialog_format_secondary_text(GTK_MESSAGE_DIALOG(d),
	    "Your changes to the jobs have not been applied.");
	gtk_dialog_add_buttons(GTK_DIALOG(d), "_Keep editing",
	    GTK_RESPONSE_CANCEL, "_Discard changes", GTK_RESPONSE_CLOSE,
	    NULL);
	r = gtk_dialog_run(GTK_DIALOG(d));
	gtk_widget_destroy(d);
	return r != GTK_RESPONSE_CLOSE;
}

static void
tray_editor_destroy_cb(GtkWidget *w, gpointer arg)
{
	struct tray_editor *e = arg;

	(void)w;
	if (e->child_watch != 0)
		g_source_remove(e->child_watch);
	e->child_watch = 0;
	if (e->monitor != NULL) {
		g_file_monitor_cancel(e->monitor);
		g_object_unref(e->monitor);
	}
	if (e->reload_src != 0)
		g_source_remove(e->reload_src);
	if (e->ext_path != NULL) {
		(void)unlink(e->ext_path);
		g_free(e->ext_path);
	}
	e->t->editor = NULL;
	free(e);
}

static void
tray_editor_load(struct tray_editor *e)
{
	json_t *res = NULL;
	char msg[1024];
	gchar *valid;

	if (tray_call(e->t, "jobs.export", NULL, &res, NULL, msg, sizeof msg)
	    != 0) {
		tray_editor_set_status(e, "not loaded", msg);
		gtk_widget_set_sensitive(e->save, FALSE);
		return;
	}
	valid = g_utf8_make_valid(json_string_value(json_object_get(res,
	    "text")) != NULL ? json_string_value(json_object_get(res,
	    "text")) : "", -1);
	gtk_text_buffer_set_text(e->buf, valid, -1);
	g_free(valid);
	json_decref(res);
	gtk_text_buffer_set_modified(e->buf, FALSE);
	tray_editor_set_status(e, NULL, "Save (Ctrl+S) checks the whole file "
	    "and applies it only when it has no errors.");
}

void
tray_editor_show(struct tray *t)
{
	struct tray_editor *e;
	GtkWidget *box, *bb, *sw, *esw;
	GtkAccelGroup *accel;
	GtkTextIter it;

	if (t->editor != NULL) {
		gtk_window_present(GTK_WINDOW(t->editor->win));
		return;
	}
	if ((e = calloc(1, sizeof *e)) == NULL)
		return;
	e->t = t;
	t->editor = e;
	e->win = gtk_window_new(GTK_WINDOW_TOPLEVEL);
	gtk_window_set_title(GTK_WINDOW(e->win), EDITOR_TITLE);
	gtk_window_set_default_size(GTK_WINDOW(e->win), 640, 480);
	accel = gtk_accel_group_new();
	gtk_window_add_accel_group(GTK_WINDOW(e->win), accel);

	box = gtk_box_new(GTK_ORIENTATION_VERTICAL, 6);
	gtk_container_set_border_width(GTK_CONTAINER(box), 8);
	bb = gtk_box_new(GTK_ORIENTATION_HORIZONTAL, 6);
	e->save = gtk_button_new_with_mnemonic("_Save");
	gtk_widget_add_accelerator(e->save, "clicked", accel, GDK_KEY_s,
	    GDK_CONTROL_MASK, GTK_ACCEL_VISIBLE);
	g_signal_connect(e->save, "clicked", G_CALLBACK(tray_editor_save_cb),
	    e);
	e->external = gtk_button_new_with_mnemonic("_Open in my editor");
	g_signal_connect(e->external, "clicked",
	    G_CALLBACK(tray_editor_external_cb), e);
	gtk_box_pack_start(GTK_BOX(bb), e->save, FALSE, FALSE, 0);
	gtk_box_pack_start(GTK_BOX(bb), e->external, FALSE, FALSE, 0);
	gtk_box_pack_start(GTK_BOX(box), bb, FALSE, FALSE, 0);

	e->view = gtk_text_view_new();
	gtk_text_view_set_monospace(GTK_TEXT_VIEW(e->view), TRUE);
	gtk_text_view_set_left_margin(GTK_TEXT_VIEW(e->view), 6);
	e->buf = gtk_text_view_get_buffer(GTK_TEXT_VIEW(e->view));
	e->err_tag = gtk_text_buffer_create_tag(e->buf, "vigil-error",
	    "paragraph-background", "#f4b6b6", "underline",
	    PANGO_UNDERLINE_ERROR, NULL);
	e->note_tag = gtk_text_buffer_create_tag(e->buf, "vigil-note",
	    "paragraph-background", "#f6e7a8", NULL);
	sw = gtk_scrolled_window_new(NULL, NULL);
	gtk_container_add(GTK_CONTAINER(sw), e->view);
	gtk_box_pack_start(GTK_BOX(box), sw, TRUE, TRUE, 0);

	e->errors = gtk_list_box_new();
	gtk_list_box_set_activate_on_single_click(GTK_LIST_BOX(e->errors),
	    TRUE);
	g_signal_connect(e->errors, "row-activated",
	    G_CALLBACK(tray_editor_row_cb), e);
	esw = gtk_scrolled_window_new(NULL, NULL);
	gtk_scrolled_window_set_policy(GTK_SCROLLED_WINDOW(esw),
	    GTK_POLICY_NEVER, GTK_POLICY_AUTOMATIC);
	gtk_scrolled_window_set_max_content_height(GTK_SCROLLED_WINDOW(esw),
	    140);
	gtk_scrolled_window_set_propagate_natural_height(
	    GTK_SCROLLED_WINDOW(esw), TRUE);
	gtk_container_add(GTK_CONTAINER(esw), e->errors);
	gtk_box_pack_start(GTK_BOX(box), esw, FALSE, FALSE, 0);

	e->status = gtk_label_new("");
	gtk_label_set_xalign(GTK_LABEL(e->status), 0);
	gtk_label_set_line_wrap(GTK_LABEL(e->status), TRUE);
	gtk_box_pack_start(GTK_BOX(box), e->status, FALSE, FALSE, 0);
	gtk_container_add(GTK_CONTAINER(e->win), box);

	g_signal_connect(e->win, "delete-event",
	    G_CALLBACK(tray_editor_delete_cb), e);
	g_signal_connect(e->win, "destroy", G_CALLBACK(tray_editor_destroy_cb),
	    e);
	tray_editor_load(e);
	gtk_widget_show_all(e->win);
	gtk_widget_hide(e->errors);
	gtk_text_buffer_get_start_iter(e->buf, &it);
	gtk_text_buffer_place_cursor(e->buf, &it);
	gtk_widget_grab_focus(e->view);
	gtk_window_present(GTK_WINDOW(e->win));
}
