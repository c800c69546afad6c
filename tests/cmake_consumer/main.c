#include <stdio.h>
#include <string.h>

#include "ifrt/ifrt.h"

int main(void) {
  printf("linked against ifrt %s\n", ifrt_version());
  return strlen(ifrt_version()) > 0 ? 0 : 1;
}
