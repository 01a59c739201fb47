/*
 * tray_windows.c: the progress, history and log windows of vigil-tray.
 *
 * Each shows what the service says (progress events, `history`, `log`);
 * the only thing one can do from them is ask the service to cancel a run.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/tray/tray.h"

struct tray_progress_win {
	GtkWidget	*win, *job, *phase, *files, *bytes, *rate, *eta,
			*current, *bar, *cancel;
	int64_t		 run;
};

struct tray_history_win {
	GtkWidget	*win, *view;
	GtkListStore	*store;
};

enum {
	HCOL_RUN, HCOL_JOB, HCOL_STATUS, HCOL_STARTED, HCOL_TOOK, HCOL_FILES,
	HCOL_BYTES, HCOL_N
};

/* GTK wants UTF-8; the service escapes paths, but be sure. */
static void
tray_label_set(GtkWidget *label, const char *text)
{
	gchar *valid = g_utf8_make_valid(text != NULL ? text : "", -1);

	gtk_label_set_text(GTK_LABEL(label), valid);
	g_free(valid);
}

/* ---- progress ---- */

static void
tray_progress_destroy_cb(GtkWidget *w, gpointer arg)
{
	struct tray *t = arg;

	(void)w;
	free(t->progress);
	t->progress = NULL;
}

static void
tray_progress_cancel_cb(GtkButton *b, gpointer arg)
{
	struct tray *t = arg;
	json_t *params, *res = NULL;
	char msg[1024];

	(void)b;
	if (t->progress == NULL || t->progress->run <= 0)
		return;
	params = json_object();
	json_object_set_new(params, "run", json_integer(t->progress->run));
	if (tray_call(t, "cancel", params, &res, NULL, msg, sizeof msg) != 0)
		tray_message(t, GTK_WINDOW(t->progress->win),
		    GTK_MESSAGE_ERROR, "Cannot cancel the run", msg);
	json_decref(res);
}

static GtkWidget *
tray_grid_row(GtkWidget *grid, int row, const char *name)
{
	GtkWidget *k, *v;

	k = gtk_label_new(name);
	gtk_widget_set_halign(k, GTK_ALIGN_END);
	gtk_style_context_add_class(gtk_widget_get_style_context(k),
	    "dim-label");
	v = gtk_label_new("");
	gtk_widget_set_halign(v, GTK_ALIGN_START);
	gtk_label_set_selectable(GTK_LABEL(v), TRUE);
	gtk_label_set_ellipsize(GTK_LABEL(v), PANGO_ELLIPSIZE_START);
	gtk_label_set_width_chars(GTK_LABEL(v), 40);
	gtk_grid_attach(GTK_GRID(grid), k, 0, row, 1, 1);
	gtk_grid_attach(GTK_GRID(grid), v, 1, row, 1, 1);
	return v;
}

void
tray_progress_show(struct tray *t)
{
	struct tray_progress_win *p;
	GtkWidget *box, *grid, *bb;

	if (t->progress != NULL) {
		gtk_window_present(GTK_WINDOW(t->progress->win));
		return;
	}
	if ((p = calloc(1, sizeof *p)) == NULL)
		return;
	t->progress = p;
	p->win = gtk_window_new(GTK_WINDOW_TOPLEVEL);
	gtk_window_set_title(GTK_WINDOW(p->win), "vigil: progress");
	gtk_window_set_default_size(GTK_WINDOW(p->win), 460, -1);
	box = gtk_box_new(GTK_ORIENTATION_VERTICAL, 8);
	gtk_container_set_border_width(GTK_CONTAINER(box), 12);
	grid = gtk_grid_new();
	gtk_grid_set_row_spacing(GTK_GRID(grid), 4);
	gtk_grid_set_column_spacing(GTK_GRID(grid), 12);
	p->job = tray_grid_row(grid, 0, "Job");
	p->phase = tray_grid_row(grid, 1, "Phase");
	p->files = tray_grid_row(grid, 2, "Files");
	p->bytes = tray_grid_row(grid, 3, "Bytes");
	p->rate = tray_grid_row(grid, 4, "Rate");
	p->eta = tray_grid_row(grid, 5, "Time left");
	p->current = tray_grid_row(grid, 6, "Current file");
	p->bar = gtk_progress_bar_new();
	gtk_progress_bar_set_show_text(GTK_PROGRESS_BAR(p->bar), TRUE);
	bb = gtk_button_box_new(GTK_ORIENTATION_HORIZONTAL);
	gtk_button_box_set_layout(GTK_BUTTON_BOX(bb), GTK_BUTTONBOX_END);
	p->cancel = gtk_button_new_with_mnemonic("_Cancel run");
	g_signal_connect(p->cancel, "clicked",
	    G_CALLBACK(tray_progress_cancel_cb), t);
	gtk_container_add(GTK_CONTAINER(bb), p->cancel);
	gtk_box_pack_start(GTK_BOX(box), grid, FALSE, FALSE, 0);
	gtk_box_pack_start(GTK_BOX(box), p->bar, FALSE, FALSE, 0);
	gtk_box_pack_start(GTK_BOX(box), bb, FALSE, FALSE, 0);
	gtk_container_add(GTK_CONTAINER(p->win), box);
	g_signal_connect(p->win, "destroy",
	    G_CALLBACK(tray_progress_destroy_cb), t);
	tray_progress_update(t);
	gtk_widget_show_all(p->win);
}

void
tray_progress_update(struct tray *t)
{
	struct tray_progress_win *p = t->progress;
	const struct tray_run *r;
	char a[32], b[32], text[256];
	int pct;

	if (p == NULL)
		return;
	if (t->model->nruns == 0) {
		p->run = 0;
		tray_label_set(p->job, t->client != NULL ? "Nothing is running" :
		    "Not connected to the backup service");
		tray_label_set(p->phase, "");
		tray_label_set(p->files, "");
		tray_label_set(p->bytes, "");
		tray_label_set(p->rate, "");
		tray_label_set(p->eta, "");
		tray_label_set(p->current, "");
		gtk_progress_bar_set_fraction(GTK_PROGRESS_BAR(p->bar), 0);
		gtk_progress_bar_set_text(GTK_PROGRESS_BAR(p->bar), "");
		gtk_widget_set_sensitive(p->cancel, FALSE);
		return;
	}
	r = &t->model->runs[0];
	p->run = r->run;
	snprintf(text, sizeof text, "%s (run %lld)%s", r->job,
	    (long long)r->run, t->model->nruns > 1 ? ", and others" : "");
	tray_label_set(p->job, text);
	tray_label_set(p->phase, r->phase);
	snprintf(text, sizeof text, "%lld seen, %lld copied",
	    (long long)r->files, (long long)r->copied);
	tray_label_set(p->files, text);
	tray_format_bytes((double)r->bytes, a, sizeof a);
	tray_format_bytes((double)r->bytes_todo, b, sizeof b);
	if (r->bytes_todo > 0)
		snprintf(text, sizeof text, "%s of %s", a, b);
	else
		snprintf(text, sizeof text, "%s", a);
	tray_label_set(p->bytes, text);
	tray_format_bytes(tray_run_rate(r), a, sizeof a);
	snprintf(text, sizeof text, "%s/s", a);
	tray_label_set(p->rate, text);
	tray_format_duration(tray_run_eta(r), a, sizeof a);
	tray_label_set(p->eta, a);
	tray_label_set(p->current, r->current);
	pct = tray_run_percent(r);
	if (pct >= 0) {
		gtk_progress_bar_set_fraction(GTK_PROGRESS_BAR(p->bar),
		    pct / 100.0);
		snprintf(text, sizeof text, "%d%%", pct);
		gtk_progress_bar_set_text(GTK_PROGRESS_BAR(p->bar), text);
	} else {
		gtk_progress_bar_pulse(GTK_PROGRESS_BAR(p->bar));
		gtk_progress_bar_set_text(GTK_PROGRESS_BAR(p->bar), r->phase);
	}
	gtk_widget_set_sensitive(p->cancel, TRUE);
}

/* ---- history ---- */

static void
tray_history_destroy_cb(GtkWidget *w, gpointer arg)
{
	struct tray *t = arg;

	(void)w;
	if (t->history != NULL)
		g_object_unref(t->history->store);
	free(t->history);
	t->history = NULL;
}

static void
tray_history_open_selected(struct tray *t)
{
	GtkTreeSelection *sel;
	GtkTreeModel *model;
	GtkTreeIter it;
	gint64 run;

	if (t->history == NULL)
		return;
	sel = gtk_tree_view_get_selection(GTK_TREE_VIEW(t->history->view));
	if (!gtk_tree_selection_get_selected(sel, &model, &it))
		return;
	gtk_tree_model_get(model, &it, HCOL_RUN, &run, -1);
	tray_log_show(t, run);
}

static void
tray_history_row_cb(GtkTreeView *v, GtkTreePath *path, GtkTreeViewColumn *c,
    gpointer arg)
{
	(void)v;
	(void)path;
	(void)c;
	tray_history_open_selected(arg);
}

static void
tray_history_log_cb(GtkButton *b, gpointer arg)
{
	(void)b;
	tray_history_open_selected(arg);
}

static void
tray_history_refresh_cb(GtkButton *b, gpointer arg)
{
	(void)b;
	tray_history_reload(arg);
}

void
tray_history_show(struct tray *t)
{
	static const char *const titles[HCOL_N] = { "Run", "Job", "Status",
	    "Started", "Took", "Files", "Bytes" };
	struct tray_history_win *h;
	GtkWidget *box, *sw, *bb, *b;
	GtkCellRenderer *cr;
	int i;

	if (t->history != NULL) {
		gtk_window_present(GTK_WINDOW(t->history->win));
		tray_history_reload(t);
		return;
	}
	if ((h = calloc(1, sizeof *h)) == NULL)
		return;
	t->history = h;
	h->store = gtk_list_store_new(HCOL_N, G_TYPE_INT64, G_TYPE_STRING,
	    G_TYPE_STRING, G_TYPE_STRING, G_TYPE_STRING, G_TYPE_INT64,
	    G_TYPE_STRING);
	h->win = gtk_window_new(GTK_WINDOW_TOPLEVEL);
	gtk_window_set_title(GTK_WINDOW(h->win), "vigil: history");
	gtk_window_set_default_size(GTK_WINDOW(h->win), 640, 360);
	box = gtk_box_new(GTK_ORIENTATION_VERTICAL, 8);
	gtk_container_set_border_width(GTK_CONTAINER(box), 8);
	h->view = gtk_tree_view_new_with_model(GTK_TREE_MODEL(h->store));
	for (i = 0; i < HCOL_N; i++) {
		cr = gtk_cell_renderer_text_new();
		gtk_tree_view_insert_column_with_attributes(
		    GTK_TREE_VIEW(h->view), -1, titles[i], cr, "text", i,
		    NULL);
	}
	g_signal_connect(h->view, "row-activated",
	    G_CALLBACK(tray_history_row_cb), t);
	sw = gtk_scrolled_window_new(NULL, NULL);
	gtk_container_add(GTK_CONTAINER(sw), h->view);
	gtk_box_pack_start(GTK_BOX(box), sw, TRUE, TRUE, 0);
	bb = gtk_button_box_new(GTK_ORIENTATION_HORIZONTAL);
	gtk_button_box_set_layout(GTK_BUTTON_BOX(bb), GTK_BUTTONBOX_END);
	gtk_box_set_spacing(GTK_BOX(bb), 6);
	b = gtk_button_new_with_mnemonic("_Refresh");
	g_signal_connect(b, "clicked", G_CALLBACK(tray_history_refresh_cb), t);
	gtk_container_add(GTK_CONTAINER(bb), b);
	b = gtk_button_new_with_mnemonic("Show _log");
	g_signal_connect(b, "clicked", G_CALLBACK(tray_history_log_cb), t);
	gtk_container_add(GTK_CONTAINER(bb), b);
	gtk_box_pack_start(GTK_BOX(box), bb, FALSE, FALSE, 0);
	gtk_container_add(GTK_CONTAINER(h->win), box);
	g_signal_connect(h->win, "destroy", G_CALLBACK(tray_history_destroy_cb),
	    t);
	tray_history_reload(t);
	gtk_widget_show_all(h->win);
}

void
tray_history_reload(struct tray *t)
{
	struct tray_history_win *h = t->history;
	json_t *params, *res = NULL, *r;
	GtkTreeIter it;
	char started[64], took[32], bytes[32], msg[1024];
	gchar *job;
	size_t i;

	if (h == NULL)
		return;
	params = json_object();
	json_object_set_new(params, "limit", json_integer(50));
	if (tray_call(t, "history", params, &res, NULL, msg, sizeof msg) != 0) {
		if (t->history != NULL)
			gtk_window_set_title(GTK_WINDOW(h->win),
			    "vigil: history (not connected)");
		return;
	}
	gtk_window_set_title(GTK_WINDOW(h->win), "vigil: history");
	gtk_list_store_clear(h->store);
	json_array_foreach(res, i, r) {
		tray_format_time(json_string_value(json_object_get(r,
		    "started")), started, sizeof started);
		tray_format_duration(json_integer_value(json_object_get(r,
		    "duration_ms")) / 1000, took, sizeof took);
		tray_format_bytes((double)json_integer_value(json_object_get(r,
		    "bytes")), bytes, sizeof bytes);
		job = g_utf8_make_valid(json_string_value(json_object_get(r,
		    "job")) != NULL ? json_string_value(json_object_get(r,
		    "job")) : "", -1);
		gtk_list_store_insert_with_values(h->store, &it, -1,
		    HCOL_RUN, (gint64)json_integer_value(json_object_get(r,
		    "id")), HCOL_JOB, job,
		    HCOL_STATUS, json_string_value(json_object_get(r, "status")),
		    HCOL_STARTED, started, HCOL_TOOK, took,
		    HCOL_FILES, (gint64)json_integer_value(json_object_get(r,
		    "files")), HCOL_BYTES, bytes, -1);
		g_free(job);
	}
	json_decref(res);
}

/* ---- a run's log ---- */

void
tray_log_show(struct tray *t, int64_t run)
{
	GtkWidget *win, *sw, *view;
	json_t *params, *res = NULL;
	char msg[1024], title[64], *text;
	gchar *valid;

	params = json_object();
	json_object_set_new(params, "run", json_integer(run));
	if (tray_call(t, "log", params, &res, NULL, msg, sizeof msg) != 0) {
		tray_message(t, t->history != NULL ?
		    GTK_WINDOW(t->history->win) : NULL, GTK_MESSAGE_ERROR,
		    "Cannot show the log", msg);
		return;
	}
	text = tray_log_text(res);
	json_decref(res);
	win = gtk_window_new(GTK_WINDOW_TOPLEVEL);
	snprintf(title, sizeof title, "vigil: run %lld", (long long)run);
	gtk_window_set_title(GTK_WINDOW(win), title);
	gtk_window_set_default_size(GTK_WINDOW(win), 640, 420);
	view = gtk_text_view_new();
	gtk_text_view_set_editable(GTK_TEXT_VIEW(view), FALSE);
	gtk_text_view_set_monospace(GTK_TEXT_VIEW(view), TRUE);
	gtk_text_view_set_left_margin(GTK_TEXT_VIEW(view), 6);
	valid = g_utf8_make_valid(text != NULL ? text : "out of memory", -1);
	gtk_text_buffer_set_text(gtk_text_view_get_buffer(GTK_TEXT_VIEW(view)),
	    valid, -1);
	g_free(valid);
	free(text);
	sw = gtk_scrolled_window_new(NULL, NULL);
	gtk_container_add(GTK_CONTAINER(sw), view);
	gtk_container_add(GTK_CONTAINER(win), sw);
	gtk_widget_show_all(win);
}
