/*
 * fuzz_replay.c: a main() for the fuzz targets when libFuzzer is not there
 * (gcc builds): each argument is an input file, or a folder whose files
 * are inputs (not recursive), run once through LLVMFuzzerTestOneInput().
 * ctest runs each target over its seed corpus this way, so the corpora stay
 * valid inputs that pass every check of their target.
 */
#include <sys/stat.h>

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REPLAY_MAX	(4 * 1024 * 1024)

static int
replay_file(const char *path, uint8_t *buf)
{
	FILE *fp;
	size_t len;

	if ((fp = fopen(path, "rb")) == NULL) {
		perror(path);
		return -1;
	}
	len = fread(buf, 1, REPLAY_MAX, fp);
	if (ferror(fp)) {
		perror(path);
		fclose(fp);
		return -1;
	}
	fclose(fp);
	LLVMFuzzerTestOneInput(buf, len);
	return 0;
}

int
main(int argc, char **argv)
{
	struct dirent *de;
	struct stat st;
	DIR *dp;
	uint8_t *buf;
	char path[4096];
	int i, n = 0, rc = 0;

	if ((buf = malloc(REPLAY_MAX)) == NULL)
		return 1;
	for (i = 1; i < argc; i++) {
		if (stat(argv[i], &st) == -1) {
			perror(argv[i]);
			rc = 1;
			continue;
		}
		if (!S_ISDIR(st.st_mode)) {
			if (replay_file(argv[i], buf) == -1)
				rc = 1;
			else
				n++;
			continue;
		}
		if ((dp = opendir(argv[i])) == NULL) {
			perror(argv[i]);
			rc = 1;
			continue;
		}
		while ((de = readdir(dp)) != NULL) {
			if (de->d_name[0] == '.')
				continue;
			if ((size_t)snprintf(path, sizeof path, "%s/%s",
			    argv[i], de->d_name) >= sizeof path)
				continue;
			if (replay_file(path, buf) == -1)
				rc = 1;
			else
				n++;
		}
		closedir(dp);
	}
	printf("replayed %d inputs\n", n);
	free(buf);
	return rc != 0 || n == 0;
}
